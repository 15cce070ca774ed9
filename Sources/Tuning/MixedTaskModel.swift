import Kernels
import Model

/// Many tasks' adapters over one frozen base, predicting batches whose sequences belong to
/// different tasks: deep prompts (P-tuning v2, prefix tuning) become per-sequence attention
/// prefixes of their own lengths, LoRA and IA3 per-sequence updates of the layers they adapt
/// (over their own sequences only), and each task's head reads its own sequences. So one forward
/// pass serves them all, and a sequence's answer does not depend on what else is in its batch.
///
/// Adapters that need something else run as groups of their own, each with its own model: those
/// that change base weights (Freeze, full fine-tuning, LoRA or IA3 with trained biases or saved
/// modules) on their own copy of the base, and input-level prompts (P-tuning v1, prompt tuning),
/// whose virtual tokens shift every position, on the shared one.
public final class MixedTaskModel {
    /// One loaded adapter.
    public final class Member {
        public let name: String
        public let info: AdapterInfo
        public let head: TaskHead
        /// How this adapter runs: within the shared pass, or as a group of its own.
        public let runsAlone: TunedModel?
        /// (P, layers · 2 · C) deep prompt and where its real tokens' positions start.
        let deepPrompt: (values: Tensor, positionOffset: Int)?
        let adaptations: [(linear: Linear, adaptation: SequenceAdaptations.Adaptation)]
        /// The most tokens one of its sequences may hold.
        public let maxTokens: Int

        init(name: String, info: AdapterInfo, head: TaskHead, runsAlone: TunedModel?,
             deepPrompt: (values: Tensor, positionOffset: Int)?,
             adaptations: [(linear: Linear, adaptation: SequenceAdaptations.Adaptation)], maxTokens: Int) {
            (self.name, self.info, self.head, self.runsAlone) = (name, info, head, runsAlone)
            (self.deepPrompt, self.adaptations, self.maxTokens) = (deepPrompt, adaptations, maxTokens)
        }
    }

    public let weights: BertWeights
    public private(set) var members: [Member] = []
    private let encoder: BertEncoder

    /// `weights` are the shared frozen base; adapters that change base weights load onto copies
    /// that `freshWeights` makes (the same checkpoint read again).
    public init(weights: BertWeights) {
        self.weights = weights
        encoder = BertEncoder(weights: weights)
    }

    /// Loads the PEFT adapter in `folder` under `name`. It is read first onto `freshWeights()` (the
    /// same checkpoint read again): an adapter that changes base weights keeps that copy; any other
    /// is read again onto the shared base, where its updates are detached for per-sequence use.
    @discardableResult
    public func load(_ folder: String, name: String, freshWeights: () throws -> BertWeights) throws -> Member {
        let copy = try freshWeights()
        let (own, ownInfo) = try PeftAdapter.read(folder, weights: copy)
        // Base tensors it brings (Freeze's layers, trained biases, saved modules) leave the copy unlike the base.
        let changesBase = zip(copy.parameters.all, weights.parameters.all).contains { !$0.value.holdsSameValues(as: $1.value) }
        guard !changesBase else {
            return add(Member(name: name, info: ownInfo, head: own.head, runsAlone: own, deepPrompt: nil, adaptations: [],
                              maxTokens: own.maxTokens))
        }
        let (tuned, info) = try PeftAdapter.read(folder, weights: weights)
        var adaptations: [(Linear, SequenceAdaptations.Adaptation)] = []
        for (_, linear) in weights.linears {
            if let update = linear.lowRank { adaptations.append((linear, .lowRank(update))) }
            if let scaling = linear.scaling { adaptations.append((linear, .scaling(scaling))) }
            linear.lowRank = nil
            linear.scaling = nil
        }
        var prompts = Prompts.none
        for component in tuned.components { component.addPrompts(to: &prompts, dropoutSeed: nil) }
        if prompts.inputEmbeddings != nil {
            return add(Member(name: name, info: info, head: tuned.head, runsAlone: tuned, deepPrompt: nil, adaptations: [],
                              maxTokens: tuned.maxTokens))
        }
        let deepPrompt = prompts.keyValues.map { prompt -> (values: Tensor, positionOffset: Int) in
            let values = Tensor(shape: prompt.shape)
            values.copy(from: prompt.value)
            return (values, prompts.positionOffset)
        }
        return add(Member(name: name, info: info, head: tuned.head, runsAlone: nil, deepPrompt: deepPrompt,
                          adaptations: adaptations, maxTokens: tuned.maxTokens))
    }

    private func add(_ member: Member) -> Member {
        members.append(member)
        return member
    }

    /// A forward pass's fixed cost, in padded tokens: what a batch is cut into passes of similar
    /// lengths against (see `lengthChunks`).
    public var passOverheadTokens = 256
    /// Passes pad their sequences to a multiple of this many tokens, so a server running for long
    /// meets few distinct shapes (the matrix engine makes its kernels once per shape).
    public var lengthQuantum = 8

    /// Logits of each encoding, encoding i predicted by `members[memberOf[i]]`: (labels) for
    /// classification, (tokens · labels) for tagging, a row per token of the encoding. Members that
    /// run alone go through their own models, the rest through shared passes, each over sequences of
    /// similar lengths whatever their tasks (so a long text does not pad a pass of short ones).
    public func predict(_ encodings: [Encoding], members memberOf: [Int], paddingId: Int32) -> [[Float]] {
        precondition(memberOf.count == encodings.count, "one member per encoding")
        var logits = [[Float]](repeating: [], count: encodings.count)
        let shared = memberOf.indices.filter { members[memberOf[$0]].runsAlone == nil }
        for chunk in lengthChunks(shared, encodings) {
            // Each member's sequences together, so its updates and head cover one range.
            let order = chunk.sorted { (memberOf[$0], $0) < (memberOf[$1], $1) }
            let batch = paddedBatch(order.map { encodings[$0] }, paddingId: paddingId,
                                    fitting: order.map { members[memberOf[$0]].maxTokens }.min()!)
            sharedPass(batch, members: order.map { memberOf[$0] }, into: &logits, at: order, encodings: encodings)
        }
        var alone: [Int: [Int]] = [:]
        for index in memberOf.indices where members[memberOf[index]].runsAlone != nil {
            alone[memberOf[index], default: []].append(index)
        }
        for (member, sequences) in alone.sorted(by: { $0.key < $1.key }) {
            for chunk in lengthChunks(sequences, encodings) {
                let batch = paddedBatch(chunk.map { encodings[$0] }, paddingId: paddingId, fitting: members[member].maxTokens)
                let values = members[member].runsAlone!.forward(batch, forBackward: false)
                copy(values, of: members[member].head, sequences: 0..<chunk.count, length: batch.length, into: &logits,
                     at: chunk, encodings: encodings)
            }
        }
        return logits
    }

    /// The encodings padded to a multiple of `lengthQuantum`, within the `fitting` tokens every member takes.
    private func paddedBatch(_ encodings: [Encoding], paddingId: Int32, fitting limit: Int) -> TokenBatch {
        let longest = encodings.map(\.inputIds.count).max()!
        return TokenBatch(encodings: encodings, paddingId: paddingId, length: max(longest, min(quantized(longest), limit)))
    }

    private func quantized(_ length: Int) -> Int { (length + lengthQuantum - 1) / lengthQuantum * lengthQuantum }

    /// `indices` cut into groups of similar lengths, the cut that pads the fewest tokens with each
    /// pass costing `passOverheadTokens` more (dynamic programming over the lengths in order).
    func lengthChunks(_ indices: [Int], _ encodings: [Encoding]) -> [[Int]] {
        let sorted = indices.sorted { (encodings[$0].inputIds.count, $0) < (encodings[$1].inputIds.count, $1) }
        let n = sorted.count
        guard n > 1 else { return n == 0 ? [] : [sorted] }
        var best = [Int](repeating: .max, count: n + 1), cut = [Int](repeating: 0, count: n + 1)
        best[0] = 0
        for end in 1...n {
            let longest = quantized(encodings[sorted[end - 1]].inputIds.count)
            for start in 0..<end {
                let cost = best[start] + (end - start) * longest + passOverheadTokens
                if cost < best[end] { (best[end], cut[end]) = (cost, start) }
            }
        }
        var chunks: [[Int]] = [], end = n
        while end > 0 {
            chunks.append(Array(sorted[cut[end]..<end]))
            end = cut[end]
        }
        return chunks.reversed()
    }

    private func sharedPass(_ batch: TokenBatch, members memberOf: [Int], into logits: inout [[Float]], at positions: [Int],
                            encodings: [Encoding]) {
        let B = batch.batch
        let ranges = runs(of: memberOf)
        var prompts = Prompts.none
        let promptLength = ranges.map { members[$0.member].deepPrompt?.values.shape[0] ?? 0 }.max() ?? 0
        if promptLength > 0 {
            let width = 2 * weights.config.layers * weights.config.hiddenSize
            let values = Tensor(shape: [B, promptLength, width])
            var lengths = [Int](repeating: 0, count: B), offsets = [Int](repeating: 0, count: B)
            for run in ranges {
                guard let prompt = members[run.member].deepPrompt else { continue }
                let P = prompt.values.shape[0]
                for b in run.sequences {
                    (values.data + b * promptLength * width).update(from: prompt.values.data, count: P * width)
                    (lengths[b], offsets[b]) = (P, prompt.positionOffset)
                }
            }
            prompts = Prompts(perSequence: SequencePrompts(values: values, lengths: lengths, positionOffsets: offsets))
        }
        var adapted: [ObjectIdentifier: Linear] = [:]
        for run in ranges {
            for (linear, adaptation) in members[run.member].adaptations {
                if linear.perSequence == nil { linear.perSequence = SequenceAdaptations() }
                linear.perSequence!.parts.append((run.sequences, adaptation))
                adapted[ObjectIdentifier(linear)] = linear
            }
        }
        defer { for linear in adapted.values { linear.perSequence = nil } }
        let allClassify = ranges.allSatisfy { members[$0.member].info.kind == .classification }
        let output = encoder.forward(batch, prompts: prompts, forBackward: false, positions: allClassify ? .first : .all)
        for run in ranges {
            let head = members[run.member].head
            copy(head.forward(output.sequences(run.sequences), masks: nil), of: head, sequences: run.sequences,
                 length: batch.length, into: &logits, at: positions, encodings: encodings)
        }
    }

    /// Copies a head's logits for the given sequences of a batch padded to `length` out, a tagging
    /// head's trimmed to each sequence's own tokens.
    private func copy(_ values: Tensor, of head: TaskHead, sequences: Range<Int>, length: Int, into logits: inout [[Float]],
                      at positions: [Int], encodings: [Encoding]) {
        let labels = head.labelCount
        let stride = head.kind == .classification ? labels : length * labels
        for (offset, b) in sequences.enumerated() {
            let index = positions[b]
            let count = head.kind == .classification ? labels : encodings[index].inputIds.count * labels
            logits[index] = Array(UnsafeBufferPointer(start: values.data + offset * stride, count: count))
        }
    }

    /// The consecutive runs of equal members.
    private func runs(of memberOf: [Int]) -> [(member: Int, sequences: Range<Int>)] {
        var result: [(member: Int, sequences: Range<Int>)] = []
        for (b, member) in memberOf.enumerated() {
            if let last = result.last, last.member == member {
                result[result.count - 1].sequences = last.sequences.lowerBound..<(b + 1)
            } else {
                result.append((member, b..<(b + 1)))
            }
        }
        return result
    }
}
