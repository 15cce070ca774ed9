import Kernels
import Model
import Tuning

/// An example as the model reads it: word-piece ids, and its label, or one label per
/// piece for tagging (the first piece of each word carries the word's tag, the rest and
/// the special tokens carry -100 and are ignored by the loss).
public struct EncodedExample: Sendable {
    public var inputIds: [Int32]
    public var tokenTypeIds: [Int32]
    /// Classification: one label. Tagging: one per position (-100 where ignored).
    public var labels: [Int32]
    /// Tagging: the position of each kept word's first piece (words cut by truncation are absent).
    public var wordStarts: [Int]
    /// Whether truncation dropped anything.
    public var truncated: Bool

    public init(inputIds: [Int32], tokenTypeIds: [Int32], labels: [Int32], wordStarts: [Int] = [],
                truncated: Bool = false) {
        (self.inputIds, self.tokenTypeIds, self.labels) = (inputIds, tokenTypeIds, labels)
        (self.wordStarts, self.truncated) = (wordStarts, truncated)
    }

    /// Rows the loss counts: 1 for classification, the tagged words for tagging.
    public var labelledCount: Int { labels.filter { $0 != -100 }.count }
}

/// Turns a task's examples into model inputs, truncated to `maxLength` pieces.
public struct ExampleEncoder: Sendable {
    public let tokenizer: BertTokenizer
    public let kind: TaskKind
    public let maxLength: Int

    public init(tokenizer: BertTokenizer, kind: TaskKind, maxLength: Int = 128) {
        self.tokenizer = tokenizer
        self.kind = kind
        self.maxLength = maxLength
    }

    public func encode(_ example: Example) -> EncodedExample {
        switch kind {
        case .classification:
            let full = tokenizer.pieceIds(example.text).count + (example.pair.map { tokenizer.pieceIds($0).count + 1 } ?? 0) + 2
            let encoding = tokenizer.encode(example.text, pair: example.pair, maxLength: maxLength)
            return EncodedExample(inputIds: encoding.inputIds, tokenTypeIds: encoding.tokenTypeIds,
                                  labels: [Int32(example.label)], wordStarts: [], truncated: full > maxLength)
        case .tagging:
            var ids: [Int32] = [tokenizer.classifierId], labels: [Int32] = [-100], starts: [Int] = []
            var truncated = false
            for (word, tag) in zip(example.words, example.tags) {
                var pieces = tokenizer.pieceIds(word)
                if pieces.isEmpty { pieces = [tokenizer.unknownId] }   // a word the normalizer erases entirely
                guard ids.count + pieces.count < maxLength else { truncated = true; break }
                starts.append(ids.count)
                labels.append(Int32(tag))
                labels += [Int32](repeating: -100, count: pieces.count - 1)
                ids += pieces
            }
            ids.append(tokenizer.separatorId)
            labels.append(-100)
            return EncodedExample(inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: ids.count), labels: labels,
                                  wordStarts: starts, truncated: truncated)
        }
    }
}

/// A batch ready for the model: padded inputs and labels laid out as the head expects.
public struct LabelledBatch: Sendable {
    public var tokens: TokenBatch
    /// Classification: (B). Tagging: (B, T), -100 at padding.
    public var labels: [Int32]
    /// Indices of the examples in the batch.
    public var members: [Int]

    /// The members padded to their longest, or to `length` (a rank's share of a global batch
    /// pads to the global batch's length); each sequence's dropout key is its example index.
    public init(_ examples: [EncodedExample], members: [Int], kind: TaskKind, paddingId: Int32, length: Int? = nil) {
        let encodings = members.map { Encoding(inputIds: examples[$0].inputIds, tokenTypeIds: examples[$0].tokenTypeIds) }
        tokens = TokenBatch(encodings: encodings, paddingId: paddingId, length: length,
                            sequenceKeys: members.map { UInt64($0) })
        self.members = members
        switch kind {
        case .classification:
            labels = members.map { examples[$0].labels[0] }
        case .tagging:
            let T = tokens.length
            labels = members.flatMap { examples[$0].labels + [Int32](repeating: -100, count: T - examples[$0].labels.count) }
        }
    }
}

/// How an epoch's training examples are cut into batches.
public enum BatchOrder: String, CaseIterable, Sendable {
    /// A seeded shuffle, then windows of 50 batches sorted by length and cut into batches, then
    /// the batches shuffled: batches hold similar lengths (less padding), yet every epoch differs.
    case bucketed
    /// A seeded shuffle cut into batches, as a PyTorch DataLoader with `shuffle=True` does.
    case shuffled
}

/// Training and evaluation batches, each padded only to its longest member.
public enum Batching {
    /// Training order for one epoch.
    public static func trainingBatches(lengths: [Int], batchSize: Int, seed: UInt64,
                                       order: BatchOrder) -> [[Int]] {
        var random = SplitMix(seed: seed)
        var shuffled = Array(lengths.indices)
        shuffled.shuffle(using: &random)
        let window = order == .bucketed ? 50 * batchSize : max(shuffled.count, 1)
        var batches: [[Int]] = []
        for start in stride(from: 0, to: shuffled.count, by: window) {
            var members = shuffled[start..<min(start + window, shuffled.count)]
            if order == .bucketed { members = ArraySlice(members.sorted { lengths[$0] < lengths[$1] }) }
            for batchStart in stride(from: members.startIndex, to: members.endIndex, by: batchSize) {
                batches.append(Array(members[batchStart..<min(batchStart + batchSize, members.endIndex)]))
            }
        }
        if order == .bucketed { batches.shuffle(using: &random) }
        return batches
    }

    /// Evaluation order: longest first (buffers are planned once), in batches.
    public static func evaluationBatches(lengths: [Int], batchSize: Int) -> [[Int]] {
        let order = lengths.indices.sorted { (lengths[$0], $0) > (lengths[$1], $1) }
        return stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0..<min($0 + batchSize, order.count)]) }
    }
}
