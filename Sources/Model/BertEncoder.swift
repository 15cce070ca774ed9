import Kernels

/// The BERT encoder: embeddings (word + position + token type, LayerNorm), N post-LayerNorm
/// transformer layers (self-attention, then GELU feed-forward) and the pooler, as
/// Hugging Face's `BertModel` computes them, with the prompts and low-rank updates
/// that tuning methods attach, and a backward pass that computes gradients only for
/// what trains and stops at the lowest layer that has anything trainable.
public final class BertEncoder {
    public let weights: BertWeights
    public var config: BertConfig { weights.config }
    private var activations: BertActivations?
    private var gradients: BertGradientBuffers?
    /// The last forward pass, which backward differentiates; `topPositions` is how many positions
    /// of each sequence the top layer computed (T, or 1 when only position 0 was asked for).
    private var pass: (shape: PassShape, prompts: Prompts, masks: SequenceDropout?, keptFrom: Int, topPositions: Int)?

    /// Tokens per chunk through the layers whose activations are not kept (see `BertActivations`):
    /// smaller saves memory, larger keeps the matrix products large. Read when buffers are planned.
    public var frozenChunkTokens = 1024

    public init(weights: BertWeights) {
        self.weights = weights
    }

    // MARK: Forward

    /// Runs the encoder over `batch`. With a `dropoutSeed` it trains: dropout as the
    /// config sets it, drawn from that seed and each sequence's key; without one it evaluates.
    /// Without `forBackward`, no activations are kept for a backward pass (prediction needs
    /// one layer's buffers, not all). With `positions: .first` the last hidden state holds
    /// position 0 of each sequence only, (B, 1, C), which is all the pooler reads. With a
    /// `frozenCache`, the layers below the lowest trainable one run without dropout and their
    /// output is kept per sequence key, then read back whenever every sequence of a batch is held
    /// (see `FrozenOutputCache`). The returned view is valid until the next call.
    @discardableResult
    public func forward(_ batch: TokenBatch, prompts: Prompts = .none, dropoutSeed: UInt64? = nil,
                        forBackward: Bool = true, positions: OutputPositions = .all,
                        frozenCache: FrozenOutputCache? = nil) -> EncoderOutput {
        let C = config.hiddenSize
        if MatrixEngine.precision == .bf16 { weights.storeFrozenMatricesInBFloat16() }
        let (inputP, kvP) = (prompts.inputLength, prompts.keyValueLength)
        let shape = PassShape(batch: batch.batch, length: batch.length + inputP, prompts: kvP)
        let (B, T, S) = (shape.batch, shape.length, shape.keys)
        let perSequence = prompts.perSequence
        precondition(perSequence == nil || (!forBackward && dropoutSeed == nil && perSequence!.lengths.count == B),
                     "per-sequence prompts are for prediction, one per sequence")
        let positionStart = { (b: Int) in perSequence?.positionOffsets[b] ?? (kvP > 0 ? prompts.positionOffset : 0) }
        precondition((0..<B).allSatisfy { positionStart($0) + T <= config.maxPositions },
                     "\((0..<B).map(positionStart).max()! + T) positions exceed the model's \(config.maxPositions)")
        let keptFrom = forBackward ? min(max(lowestLayerNeedingGradient(prompts), 0), config.layers) : config.layers
        let acts = buffers(for: ActivationPlan(shape: shape, withDropout: dropoutSeed != nil, keptFrom: keptFrom,
                                               everyTopPosition: positions == .all))
        let topPositions = positions == .first ? 1 : T
        pass = (shape, prompts, dropoutSeed.map { SequenceDropout(rate: 0, seed: $0, keys: batch.sequenceKeys) }, keptFrom,
                topPositions)

        // Ids (B, T) of every position, prompt positions first, and the key mask (B, S).
        for b in 0..<B {
            for t in 0..<T {
                let i = b * T + t, token = t - inputP
                acts.inputIds[i] = token >= 0 ? batch.inputIds[b * batch.length + token] : 0
                acts.tokenTypeIds[i] = token >= 0 ? batch.tokenTypeIds[b * batch.length + token] : 0
                acts.positionIds[i] = Int32(positionStart(b) + t)
            }
            // Deep-prompt rows past this sequence's own prompt (a shorter one, in a mixed batch) are masked.
            let promptRows = perSequence?.lengths[b] ?? kvP
            for s in 0..<S {
                let token = s - kvP - inputP
                acts.keyMask[b * S + s] = token >= 0 ? batch.attentionMask[b * batch.length + token]
                    : s < promptRows || s >= kvP ? 1 : 0
            }
        }

        // The layers below the buffers' keptFrom keep nothing for backward: a chunk of sequences
        // at a time through them, so their buffers are sized for the chunk; then the rest, whole batch.
        // With a cache they run without dropout, once per sequence key.
        let cache = acts.keptFrom > 0 ? frozenCache : nil
        let frozenPositions = acts.keptFrom > 0 ? computedPositions(acts.keptFrom - 1) : T
        if let cache, cache.holdsAll(batch.sequenceKeys, layer: acts.keptFrom - 1) {
            cache.read(into: acts.frozenOutput.data, keys: batch.sequenceKeys, positions: frozenPositions, channels: C)
        } else {
            embeddingsForward(batch, prompts: prompts, acts, shape: shape, dropout: cache == nil)
            frozenLayersForward(acts, shape: shape, outputPositions: frozenPositions, dropout: cache == nil)
            if let cache {
                // Each sequence's real positions (padding comes last), of those the frozen layers computed.
                let lengths = (0..<B).map { b in
                    min(batch.attentionMask[(b * batch.length)..<((b + 1) * batch.length)].filter { $0 != 0 }.count, frozenPositions)
                }
                cache.store(acts.frozenOutput.data, keys: batch.sequenceKeys, lengths: lengths, positions: frozenPositions,
                            channels: C)
            }
        }
        for index in acts.keptFrom..<config.layers {
            let w = weights.layers[index], next = index + 1 < config.layers ? weights.layers[index + 1] : nil
            // The top layer's output is the encoder's: the head reads it.
            let outputRead = next.map { [$0.query, $0.key, $0.value].contains(where: \.hasTrainable) } ?? true
            acts.layers[index].keep(context: w.attentionOutput.hasTrainable, normed: w.intermediate.hasTrainable,
                                    output: outputRead, shared: acts.shared(forLayer: index))
            layerForward(index, weights.layers[index], acts.layers[index], input: acts.layerInput(index), shape: shape,
                         positions: computedPositions(index), keyMask: acts.keyMask, firstSequence: 0,
                         shared: acts)
        }
        let input = acts.layerInput(config.layers)

        // Pooler: tanh(dense(hidden state at position 0)).
        for b in 0..<B { (acts.classifierTokens.data + b * C).update(from: input + b * topPositions * C, count: C) }
        weights.pooler.forward(out: acts.pooled.data, inp: acts.classifierTokens.data, rows: B, masks: maskSource(1),
                              sequences: 0..<B)
        tanhForward(out: acts.pooled.data, inp: acts.pooled.data, count: B * C)
        return EncoderOutput(batch: B, length: topPositions, channels: C, promptPositions: min(inputP, topPositions),
                             lastHiddenState: input, pooled: acts.pooled.data, buffers: acts)
    }

    /// The layers below the buffers' keptFrom, a chunk of sequences at a time, into `acts.frozenOutput`
    /// ((B, outputPositions, C): the last of them may be the top layer); without `dropout` they run
    /// with none, as in evaluation.
    private func frozenLayersForward(_ acts: BertActivations, shape: PassShape, outputPositions: Int, dropout: Bool) {
        let (B, T, C) = (shape.batch, shape.length, config.hiddenSize)
        for first in stride(from: 0, to: acts.keptFrom > 0 ? B : 0, by: acts.frozenChunk) {
            let sequences = first..<min(first + acts.frozenChunk, B)
            let chunk = PassShape(batch: sequences.count, length: T, prompts: shape.prompts)
            withMasks(ofSequences: sequences, dropout: dropout) {
                var input = UnsafePointer(acts.embedded.data + first * T * C)
                for index in 0..<acts.keptFrom {
                    layerForward(index, weights.layers[index], acts.layers[index], input: input, shape: chunk,
                                 positions: computedPositions(index), keyMask: acts.keyMask, firstSequence: first,
                                 shared: acts)
                    input = UnsafePointer(acts.layers[index].output.data)
                }
                (acts.frozenOutput.data + first * outputPositions * C).update(from: input, count: chunk.batch * outputPositions * C)
            }
        }
    }

    /// Embeddings: (B, T, C) = word[ids] (or the input prompt) + position + token type, LayerNorm,
    /// and (when training and `dropout`) dropout, into `acts.embedded`.
    private func embeddingsForward(_ batch: TokenBatch, prompts: Prompts, _ acts: BertActivations, shape: PassShape,
                                   dropout withDropout: Bool) {
        let (B, T, C, rows, inputP) = (shape.batch, shape.length, config.hiddenSize, shape.rows, prompts.inputLength)
        let sum = acts.embeddingSum.data
        acts.inputIds.withUnsafeBufferPointer { ids in
            embeddingForward(out: sum, ids: ids.baseAddress!, table: weights.wordEmbeddings.elements, count: rows, channels: C)
        }
        if let input = prompts.inputEmbeddings {
            for b in 0..<B { (sum + b * T * C).update(from: input.value.data, count: inputP * C) }
        }
        acts.positionIds.withUnsafeBufferPointer { ids in
            embeddingForward(out: sum, ids: ids.baseAddress!, table: weights.positionEmbeddings.elements,
                             count: rows, channels: C, accumulate: true)
        }
        acts.tokenTypeIds.withUnsafeBufferPointer { ids in
            embeddingForward(out: sum, ids: ids.baseAddress!, table: weights.tokenTypeEmbeddings.elements,
                             count: rows, channels: C, accumulate: true)
        }
        weights.embeddingNorm.forward(out: acts.embedded.data, mean: acts.embeddingMean.data,
                                      rstd: acts.embeddingRstd.data, inp: sum, rows: rows)
        guard withDropout else { return }
        dropout(config.hiddenDropout, site: 0)?.forward(out: acts.embedded.data, inp: acts.embedded.data,
                                                         elementsPerSequence: T * C)
    }

    /// Positions of each sequence whose outputs layer `index` computes in the current pass:
    /// all T, except at the top when only position 0 is asked for.
    private func computedPositions(_ index: Int) -> Int {
        guard let pass else { preconditionFailure("no pass") }
        return index == config.layers - 1 ? pass.topPositions : pass.shape.length
    }

    /// One layer over `shape.batch` sequences, the batch's from `firstSequence` on (their key
    /// mask rows; their dropout masks are the pass's). Keys and values cover every position;
    /// queries and everything after them only the first `positions` (T, or 1: position 0), since
    /// nothing reads the others. Every dropout mask of a computed position is the one it has
    /// when all positions are computed.
    private func layerForward(_ index: Int, _ w: BertLayerWeights, _ a: LayerActivations, input: UnsafePointer<Float>,
                              shape: PassShape, positions: Int, keyMask: [Float], firstSequence: Int,
                              shared: BertActivations) {
        let (B, T, S) = (shape.batch, shape.length, shape.keys)
        let (C, F, rows, queryRows) = (config.hiddenSize, config.intermediateSize, B * T, B * positions)
        let site = UInt64(index + 1) * 16
        let batchSequences = firstSequence..<(firstSequence + B)
        let queryInput = positions == T ? input : firstPositions(of: input, shape: shape, into: a.firstPositions)
        // Self-attention: q (B, positions, C), k, v (B, T, C), after this layer's key/value prompts (S − T rows).
        MatrixEngine.sharingRounding(of: input, count: rows * C) {
            w.query.forward(out: a.q.data, inp: queryInput, rows: queryRows, masks: maskSource(site + 3),
                            sequences: batchSequences)
            w.key.forward(out: a.k.data, inp: input, rows: rows, masks: maskSource(site + 4), sequences: batchSequences)
            w.value.forward(out: a.v.data, inp: input, rows: rows, masks: maskSource(site + 5),
                            sequences: batchSequences)
        }
        let attention = AttentionShape(batch: B, queries: positions, keys: T, prefix: shape.prompts, channels: C,
                                       heads: config.heads)
        let attentionDropout = dropout(config.attentionDropout, site: site)
        keyMask.withUnsafeBufferPointer { mask in
            attentionForward(out: a.context.data, probs: a.probs.data, q: a.q.data, k: a.k.data, v: a.v.data,
                             prefix: promptPrefix(index, firstSequence: firstSequence), keyMask: mask.baseAddress! + firstSequence * S, shape: attention,
                             dropout: attentionDropout, scratch: shared.attentionScratch.data)
        }
        // Output projection, dropout, residual, LayerNorm.
        w.attentionOutput.forward(out: a.attentionResidual.data, inp: a.context.data, rows: queryRows,
                                  masks: maskSource(site + 6), sequences: batchSequences)
        dropout(config.hiddenDropout, site: site + 1)?.forward(out: a.attentionResidual.data, inp: a.attentionResidual.data,
                                                                elementsPerSequence: positions * C)
        accumulate(into: a.attentionResidual.data, queryInput, count: queryRows * C)
        w.attentionNorm.forward(out: a.attentionNormed.data, mean: a.attentionMean.data, rstd: a.attentionRstd.data,
                                inp: a.attentionResidual.data, rows: queryRows)
        // Feed-forward: (B, positions, C) → GELU (·, F) → (·, C), dropout, residual, LayerNorm.
        w.intermediate.forward(out: a.intermediate.data, inp: a.attentionNormed.data, rows: queryRows,
                               masks: maskSource(site + 7), sequences: batchSequences)
        if w.output.takesBFloat16Input {
            // Only the FF-out product reads GELU's output (backward recomputes it): written in
            // bfloat16, into half its buffer.
            withBFloat16GELU(of: a.intermediate, into: shared.activated, count: queryRows * F) {
                w.output.forward(out: a.outputResidual.data, bfloat16Input: $0, rows: queryRows)
            }
        } else {
            geluForward(out: shared.activated.data, inp: a.intermediate.data, count: queryRows * F)
            w.output.forward(out: a.outputResidual.data, inp: shared.activated.data, rows: queryRows,
                             masks: maskSource(site + 8), sequences: batchSequences)
        }
        dropout(config.hiddenDropout, site: site + 2)?.forward(out: a.outputResidual.data, inp: a.outputResidual.data,
                                                                elementsPerSequence: positions * C)
        accumulate(into: a.outputResidual.data, a.attentionNormed.data, count: queryRows * C)
        w.outputNorm.forward(out: a.output.data, mean: a.outputMean.data, rstd: a.outputRstd.data,
                             inp: a.outputResidual.data, rows: queryRows)
    }

    /// Runs `body` with GELU of the first `count` floats of `input`, in bfloat16, written into the
    /// first half of `buffer` (for a product that reads nothing else of it).
    private func withBFloat16GELU(of input: Tensor, into buffer: Tensor, count: Int,
                                  _ body: (UnsafePointer<UInt16>) -> Void) {
        UnsafeMutableRawPointer(buffer.data).withMemoryRebound(to: UInt16.self, capacity: count) {
            geluForward(out: $0, inp: input.data, count: count)
            body($0)
        }
    }

    /// Copies position 0 of each of the `shape.batch` sequences of `input` (B, T, C) into `buffer` (B, C).
    private func firstPositions(of input: UnsafePointer<Float>, shape: PassShape, into buffer: Tensor) -> UnsafePointer<Float> {
        let C = config.hiddenSize
        for b in 0..<shape.batch { (buffer.data + b * C).update(from: input + b * shape.length * C, count: C) }
        return UnsafePointer(buffer.data)
    }

    /// Layer `index`'s key/value prompt rows, read in place from the prompt tensor (P, 2·L·C),
    /// whose row holds every layer's key then value vectors, or from the per-sequence prompts
    /// (B, P, 2·L·C) starting at sequence `firstSequence`.
    private func promptPrefix(_ index: Int, firstSequence: Int = 0) -> AttentionPrefix? {
        let C = config.hiddenSize
        if let perSequence = pass?.prompts.perSequence {
            let (P, width) = (perSequence.values.shape[1], perSequence.values.shape[2])
            let first = UnsafePointer(perSequence.values.data) + firstSequence * P * width
            return AttentionPrefix(keys: first + 2 * index * C, values: first + (2 * index + 1) * C, stride: width,
                                   sequenceStride: P * width)
        }
        guard let prompt = pass?.prompts.keyValues else { return nil }
        return AttentionPrefix(keys: prompt.value.data + 2 * index * C, values: prompt.value.data + (2 * index + 1) * C,
                               stride: prompt.shape[1])
    }

    // MARK: Backward

    /// Differentiates the last forward pass given the loss's gradients with respect to
    /// its outputs, (B, T, C) last hidden state and (B, C) pooled output (either may be nil),
    /// accumulating into every trainable parameter's gradient and into the prompts' gradients.
    ///
    /// `layerFinished` is called with `layers` once the pooler is done, then with each layer's
    /// index once its backward is done, so gradients can travel while the layers below compute.
    public func backward(dLastHiddenState: UnsafePointer<Float>?, dPooled: UnsafePointer<Float>?,
                         layerFinished: (Int) -> Void = { _ in }) {
        guard let pass, let acts = activations else { preconditionFailure("backward before forward") }
        let (shape, prompts) = (pass.shape, pass.prompts)
        let (B, C) = (shape.batch, config.hiddenSize)
        let outputRows = B * pass.topPositions
        if !(gradients.map { $0.capacity.holds(shape) } ?? false) {
            gradients = BertGradientBuffers(config: config, shape: acts.capacity)
        }
        let g = gradients!
        let lowest = lowestLayerNeedingGradient(prompts)
        guard lowest <= config.layers else { return }   // nothing trains inside the encoder
        precondition(pass.keptFrom <= max(lowest, 0), "backward after a forward pass that kept no activations for it")

        // Gradient of the last layer's output: the given one plus the pooler's share at position 0.
        let dHidden = g.hidden.data
        if let dLastHiddenState {
            dHidden.update(from: dLastHiddenState, count: outputRows * C)
        } else {
            g.hidden.zero(first: outputRows * C)
        }
        if let dPooled {
            g.pooled.data.update(from: dPooled, count: B * C)
            // Through tanh, in place: dpre = dpooled · (1 − pooled²).
            for i in 0..<(B * C) { g.pooled.data[i] *= 1 - acts.pooled.data[i] * acts.pooled.data[i] }
            g.classifierTokens.zero(first: B * C)
            weights.pooler.backward(dinp: g.classifierTokens.data, dout: g.pooled.data, inp: acts.classifierTokens.data,
                                    rows: B, masks: maskSource(1))
            for b in 0..<B { accumulate(into: dHidden + b * pass.topPositions * C, g.classifierTokens.data + b * C, count: C) }
        }
        layerFinished(config.layers)

        var dOutput = g.hidden, dInput = g.hiddenBelow
        for index in stride(from: config.layers - 1, through: max(lowest, 0), by: -1) {
            layerBackward(index, weights.layers[index], acts.layers[index], g, activated: acts.activated, dOutput: dOutput.data,
                          dInput: index > lowest ? dInput.data : nil, input: acts.layerInput(index), shape: shape,
                          positions: computedPositions(index))
            layerFinished(index)
            swap(&dOutput, &dInput)
        }
        guard lowest < 0 else { return }
        embeddingsBackward(dEmbedded: dOutput.data, acts, g, shape: shape)
    }

    /// The lowest layer whose backward must run: 0…layers−1, −1 when the embeddings
    /// (or input prompts) need a gradient, `layers + 1` when nothing in the encoder trains.
    private func lowestLayerNeedingGradient(_ prompts: Prompts) -> Int {
        if weights.embeddingsTrain || prompts.inputEmbeddings != nil { return -1 }
        if prompts.keyValues != nil { return 0 }
        if let index = weights.layers.firstIndex(where: { $0.attentionBlockTrains || $0.feedForwardBlockTrains }) {
            return index
        }
        return weights.pooler.hasTrainable ? config.layers : config.layers + 1
    }

    private func layerBackward(
        _ index: Int, _ w: BertLayerWeights, _ a: LayerActivations, _ g: BertGradientBuffers, activated: Tensor,
        dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>?, input: UnsafePointer<Float>,
        shape: PassShape, positions: Int
    ) {
        let (B, T) = (shape.batch, shape.length)
        let (C, F, rows, queryRows) = (config.hiddenSize, config.intermediateSize, B * T, B * positions)
        let site = UInt64(index + 1) * 16
        let queryInput = positions == T ? input : UnsafePointer(a.firstPositions.data)
        let prompt = pass?.prompts.keyValues
        // Below the feed-forward block, gradient is needed only if the attention block, a prompt
        // or a lower layer wants it.
        let attentionNeeded = dInput != nil || w.attentionBlockTrains || prompt != nil

        // Output LayerNorm → residual branch and dropout → FF out → GELU → FF in.
        // Every gradient buffer is zeroed (and copied) only as far as this pass uses it.
        g.residual.zero(first: queryRows * C)
        w.outputNorm.backward(dinp: g.residual.data, dout: dOutput, inp: a.outputResidual.data,
                              mean: a.outputMean.data, rstd: a.outputRstd.data, rows: queryRows)
        g.normed.data.update(from: g.residual.data, count: queryRows * C)   // the residual path to the attention block's output
        let dBranch = throughDropout(g.residual.data, into: g.branch, sequences: B, positions: positions,
                                     dropout(config.hiddenDropout, site: site + 2))
        g.activated.zero(first: queryRows * F)
        // Only the FF-out layer's own gradients read its input: recompute it for them (in bfloat16
        // where only a product reads it).
        if w.output.weight.isTrainable && w.output.takesBFloat16Input {
            withBFloat16GELU(of: a.intermediate, into: activated, count: queryRows * F) {
                w.output.backward(dinp: g.activated.data, dout: dBranch, bfloat16Input: $0, rows: queryRows)
            }
        } else {
            if w.output.hasTrainable {
                geluForward(out: activated.data, inp: a.intermediate.data, count: queryRows * F)
            }
            w.output.backward(dinp: g.activated.data, dout: dBranch, inp: activated.data, rows: queryRows,
                              masks: maskSource(site + 8))
        }
        geluBackward(g.activated.data, inp: a.intermediate.data, count: queryRows * F)
        w.intermediate.backward(dinp: attentionNeeded ? g.normed.data : nil, dout: g.activated.data,
                                inp: a.attentionNormed.data, rows: queryRows, masks: maskSource(site + 7))
        guard attentionNeeded else { return }

        // Attention LayerNorm → residual (to the layer input) and dropout → output projection.
        g.residual.zero(first: queryRows * C)
        w.attentionNorm.backward(dinp: g.residual.data, dout: g.normed.data, inp: a.attentionResidual.data,
                                 mean: a.attentionMean.data, rstd: a.attentionRstd.data, rows: queryRows)
        // The gradient of q's input (the computed positions of the layer input) starts as the residual path's.
        let dQueryInput = dInput.map { positions == T ? $0 : g.firstPositions.data }
        dQueryInput?.update(from: g.residual.data, count: queryRows * C)
        let dAttentionOut = throughDropout(g.residual.data, into: g.branch, sequences: B, positions: positions,
                                           dropout(config.hiddenDropout, site: site + 1))
        g.context.zero(first: queryRows * C)
        w.attentionOutput.backward(dinp: g.context.data, dout: dAttentionOut, inp: a.context.data, rows: queryRows,
                                   masks: maskSource(site + 6))

        // Attention → q, the tokens' k and v, and each sequence's share of the prompt rows' gradient.
        let P = shape.prompts
        let attention = AttentionShape(batch: B, queries: positions, keys: T, prefix: P, channels: C, heads: config.heads)
        let attentionDropout = dropout(config.attentionDropout, site: site)
        g.q.zero(first: queryRows * C); g.k.zero(first: rows * C); g.v.zero(first: rows * C)
        let dPrompt = prompt?.gradient
        if dPrompt != nil { g.promptKeys.zero(first: B * P * C); g.promptValues.zero(first: B * P * C) }
        attentionBackward(dq: g.q.data, dk: g.k.data, dv: g.v.data,
                          prefixGradients: dPrompt.map { _ in (g.promptKeys.data, g.promptValues.data) },
                          dout: g.context.data, probs: a.probs.data, q: a.q.data, k: a.k.data, v: a.v.data,
                          prefix: promptPrefix(index), scratch: g.attentionScratch.data, shape: attention,
                          dropout: attentionDropout)
        if let dPrompt, let stride = prompt?.shape[1] {
            for (shares, column) in [(g.promptKeys, 2 * index * C), (g.promptValues, (2 * index + 1) * C)] {
                for b in 0..<B {
                    for p in 0..<P { accumulate(into: dPrompt.data + p * stride + column, shares.data + (b * P + p) * C, count: C) }
                }
            }
        }
        MatrixEngine.sharingRounding(of: input, count: rows * C) {
            w.query.backward(dinp: dQueryInput, dout: g.q.data, inp: queryInput, rows: queryRows,
                             masks: maskSource(site + 3))
            if let dInput, positions != T {
                // Only position 0 of each sequence had a query and a residual path.
                dInput.update(repeating: 0, count: rows * C)
                for b in 0..<B { (dInput + b * T * C).update(from: g.firstPositions.data + b * C, count: C) }
            }
            w.key.backward(dinp: dInput, dout: g.k.data, inp: input, rows: rows, masks: maskSource(site + 4))
            w.value.backward(dinp: dInput, dout: g.v.data, inp: input, rows: rows, masks: maskSource(site + 5))
        }
    }

    private func embeddingsBackward(dEmbedded: UnsafeMutablePointer<Float>, _ acts: BertActivations,
                                    _ g: BertGradientBuffers, shape: PassShape) {
        let (B, T, C) = (shape.batch, shape.length, config.hiddenSize)
        let rows = B * T
        let dNormed = throughDropout(dEmbedded, into: g.branch, sequences: B, positions: T, dropout(config.hiddenDropout, site: 0))
        g.residual.zero(first: rows * C)
        weights.embeddingNorm.backward(dinp: g.residual.data, dout: dNormed, inp: acts.embeddingSum.data,
                                       mean: acts.embeddingMean.data, rstd: acts.embeddingRstd.data, rows: rows)
        let dSum = g.residual.data
        for (table, ids) in [(weights.wordEmbeddings, acts.inputIds), (weights.positionEmbeddings, acts.positionIds),
                             (weights.tokenTypeEmbeddings, acts.tokenTypeIds)] {
            guard let dTable = table.gradient else { continue }
            let inputP = pass?.prompts.inputLength ?? 0
            ids.withUnsafeBufferPointer { ids in
                for b in 0..<B {
                    // Prompt positions read no word embedding, so they add none to its gradient.
                    let skip = table === weights.wordEmbeddings ? inputP : 0
                    embeddingBackward(dtable: dTable.data, dout: dSum + (b * T + skip) * C,
                                      ids: ids.baseAddress! + b * T + skip, count: T - skip, channels: C)
                }
            }
        }
        if let input = pass?.prompts.inputEmbeddings, let dInput = input.gradient {
            let P = input.shape[0]
            for b in 0..<B { accumulate(into: dInput.data, dSum + b * T * C, count: P * C) }
        }
    }

    // MARK: Helpers

    /// Buffers for a pass that needs `plan`, grown (never shrunk) when the current ones do not cover it.
    private func buffers(for plan: ActivationPlan) -> BertActivations {
        if let acts = activations, acts.plan.covers(plan) { return acts }
        let acts = BertActivations(config: config, plan: activations.map { $0.plan.merged(with: plan) } ?? plan,
                                   frozenChunkTokens: frozenChunkTokens)
        activations = acts
        return acts
    }

    /// Runs `body` with the pass's dropout masks narrowed to `sequences`, as a chunk of the batch
    /// sees them: each sequence keeps its own masks whatever chunk it is in. Without `dropout`,
    /// `body` runs with none, as in evaluation.
    private func withMasks(ofSequences sequences: Range<Int>, dropout: Bool = true, _ body: () -> Void) {
        guard let masks = pass?.masks else { return body() }
        pass!.masks = dropout ? SequenceDropout(rate: masks.rate, seed: masks.seed, keys: Array(masks.keys[sequences])) : nil
        body()
        pass!.masks = masks
    }

    /// The mask source of one site in the current training pass (nil when evaluating), for
    /// dropouts whose rate the site's owner knows, such as a low-rank update's.
    private func maskSource(_ site: UInt64) -> SequenceDropout? {
        pass?.masks?.site(site ^ 0x4C6F_5241)
    }

    /// The dropout of one site in the current training pass, or nil when evaluating or the rate is 0.
    private func dropout(_ rate: Float, site: UInt64) -> SequenceDropout? {
        pass?.masks?.site(site).rate(rate)
    }

    /// The gradient before a dropout over (B, positions, C): `gradient` itself without one, else
    /// masked and scaled into `scratch`.
    private func throughDropout(_ gradient: UnsafeMutablePointer<Float>, into scratch: Tensor, sequences: Int, positions: Int,
                                _ dropout: SequenceDropout?) -> UnsafeMutablePointer<Float> {
        guard let dropout else { return gradient }
        scratch.zero(first: sequences * positions * config.hiddenSize)
        dropout.backward(dinp: scratch.data, dout: gradient, elementsPerSequence: positions * config.hiddenSize)
        return scratch.data
    }
}

/// Which positions' last hidden states a forward pass computes.
public enum OutputPositions: Sendable {
    /// Every position: the last hidden state is (B, T, C).
    case all
    /// Position 0 of each sequence, all the pooler reads: the top layer computes keys and values
    /// for every position but queries, feed-forward and output for position 0 only, (B, 1, C).
    case first
}

/// A view of the encoder's outputs for one batch, valid until the encoder's next call
/// (which reuses the buffers); it keeps them alive, so it never dangles.
public struct EncoderOutput {
    public let batch: Int, length: Int, channels: Int
    /// Leading positions of each sequence that are input-level prompt tokens (P-tuning v1).
    public let promptPositions: Int
    /// (B, T, C) the last layer's hidden states, prompt positions included.
    public let lastHiddenState: UnsafePointer<Float>
    /// (B, C) the pooler's output.
    public let pooled: UnsafePointer<Float>
    let buffers: AnyObject

    init(batch: Int, length: Int, channels: Int, promptPositions: Int, lastHiddenState: UnsafePointer<Float>,
         pooled: UnsafePointer<Float>, buffers: AnyObject) {
        self.batch = batch
        self.length = length
        self.channels = channels
        self.promptPositions = promptPositions
        self.lastHiddenState = lastHiddenState
        self.pooled = pooled
        self.buffers = buffers
    }

    /// Hidden state of sequence `b` at position `t`, as an array of C floats.
    public func hidden(_ b: Int, _ t: Int) -> [Float] {
        precondition(b < batch && t < length, "position (\(b), \(t)) outside the output's (\(batch), \(length))")
        return Array(UnsafeBufferPointer(start: lastHiddenState + (b * length + t) * channels, count: channels))
    }

    /// The same output restricted to the given sequences (a view; valid as long as this one).
    public func sequences(_ range: Range<Int>) -> EncoderOutput {
        precondition(range.lowerBound >= 0 && range.upperBound <= batch, "sequences \(range) outside a batch of \(batch)")
        return EncoderOutput(batch: range.count, length: length, channels: channels, promptPositions: promptPositions,
                             lastHiddenState: lastHiddenState + range.lowerBound * length * channels,
                             pooled: pooled + range.lowerBound * channels, buffers: buffers)
    }

    /// Pooled output of sequence `b`, as an array of C floats.
    public func pooledOutput(_ b: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: pooled + b * channels, count: channels))
    }
}
