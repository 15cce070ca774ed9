import Kernels

/// The BERT encoder: embeddings (word + position + token type, LayerNorm), N post-LayerNorm
/// transformer layers (self-attention, then GELU feed-forward) and the pooler, as
/// Hugging Face's `BertModel` computes them.
public final class BertEncoder {
    public let weights: BertWeights
    public var config: BertConfig { weights.config }
    private var activations: BertActivations?

    public init(weights: BertWeights) {
        self.weights = weights
    }

    /// Runs the encoder over `batch`. With a `dropoutSeed` it trains: dropout as the
    /// config sets it, drawn from that seed; without one it evaluates (no dropout).
    /// The returned view is valid until the next call.
    @discardableResult
    public func forward(_ batch: TokenBatch, dropoutSeed: UInt64? = nil) -> EncoderOutput {
        let (B, T, C) = (batch.batch, batch.length, config.hiddenSize)
        let training = dropoutSeed != nil
        precondition(T <= config.maxPositions, "sequence length \(T) exceeds \(config.maxPositions) positions")
        if !(activations?.fits(batch: B, length: T, heads: config.heads, withDropout: training) ?? false) {
            activations = BertActivations(config: config, batch: B, length: T, withDropout: training)
        }
        let acts = activations!
        let rows = B * T
        let seed = dropoutSeed ?? 0
        func dropout(_ rate: Float, site: UInt64) -> Dropout? {
            training && rate > 0 ? Dropout(rate: rate, seed: seed).derived(site) : nil
        }

        // Embeddings: (B, T, C) = word[ids] + position[t] + type[types], LayerNorm, dropout.
        for i in 0..<rows { acts.positionIds[i] = Int32(i % T) }
        batch.inputIds.withUnsafeBufferPointer { ids in
            embeddingForward(out: acts.embeddingSum.data, ids: ids.baseAddress!, table: weights.wordEmbeddings.data,
                             count: rows, channels: C)
        }
        acts.positionIds.withUnsafeBufferPointer { ids in
            embeddingForward(out: acts.embeddingSum.data, ids: ids.baseAddress!, table: weights.positionEmbeddings.data,
                             count: rows, channels: C, accumulate: true)
        }
        batch.tokenTypeIds.withUnsafeBufferPointer { ids in
            embeddingForward(out: acts.embeddingSum.data, ids: ids.baseAddress!, table: weights.tokenTypeEmbeddings.data,
                             count: rows, channels: C, accumulate: true)
        }
        layerNormForward(out: acts.embedded.data, mean: acts.embeddingMean.data, rstd: acts.embeddingRstd.data,
                         inp: acts.embeddingSum.data, weight: weights.embeddingNorm.weight.data,
                         bias: weights.embeddingNorm.bias.data, rows: rows, channels: C, eps: config.layerNormEps)
        if let d = dropout(config.hiddenDropout, site: 0) {
            dropoutForward(out: acts.embedded.data, inp: acts.embedded.data, count: rows * C, dropout: d)
        }

        var input = UnsafePointer(acts.embedded.data)
        batch.attentionMask.withUnsafeBufferPointer { mask in
            for (index, layer) in weights.layers.enumerated() {
                let site = UInt64(index + 1) * 8
                layerForward(layer, acts.layers[index], input: input, keyMask: mask.baseAddress!, batch: B, length: T,
                             attentionDropout: dropout(config.attentionDropout, site: site),
                             attentionOutputDropout: dropout(config.hiddenDropout, site: site + 1),
                             outputDropout: dropout(config.hiddenDropout, site: site + 2))
                input = UnsafePointer(acts.layers[index].output.data)
            }
        }

        // Pooler: tanh(dense(hidden state at position 0)).
        for b in 0..<B { (acts.classifierTokens.data + b * C).update(from: input + b * T * C, count: C) }
        linearForward(out: acts.pooled.data, inp: acts.classifierTokens.data, weight: weights.pooler.weight.data,
                      bias: weights.pooler.bias.data, rows: B, inFeatures: C, outFeatures: C)
        tanhForward(out: acts.pooled.data, inp: acts.pooled.data, count: B * C)
        return EncoderOutput(batch: B, length: T, channels: C, lastHiddenState: input, pooled: acts.pooled.data, buffers: acts)
    }

    private func layerForward(
        _ w: BertLayerWeights, _ a: LayerActivations, input: UnsafePointer<Float>, keyMask: UnsafePointer<Float>,
        batch B: Int, length T: Int,
        attentionDropout: Dropout?, attentionOutputDropout: Dropout?, outputDropout: Dropout?
    ) {
        let (C, F, rows) = (config.hiddenSize, config.intermediateSize, B * T)
        // Self-attention: q, k, v (B, T, C) → context (B, T, C).
        for (projection, out) in [(w.query, a.q), (w.key, a.k), (w.value, a.v)] {
            linearForward(out: out.data, inp: input, weight: projection.weight.data, bias: projection.bias.data,
                          rows: rows, inFeatures: C, outFeatures: C)
        }
        let shape = AttentionShape(batch: B, queries: T, keys: T, channels: C, heads: config.heads)
        attentionForward(out: a.context.data, probs: a.probs.data,
                         dropped: attentionDropout == nil ? nil : a.dropped.data,
                         q: a.q.data, k: a.k.data, v: a.v.data, keyMask: keyMask, shape: shape, dropout: attentionDropout)
        // Output projection, dropout, residual, LayerNorm.
        linearForward(out: a.attentionResidual.data, inp: a.context.data, weight: w.attentionOutput.weight.data,
                      bias: w.attentionOutput.bias.data, rows: rows, inFeatures: C, outFeatures: C)
        if let d = attentionOutputDropout {
            dropoutForward(out: a.attentionResidual.data, inp: a.attentionResidual.data, count: rows * C, dropout: d)
        }
        accumulate(into: a.attentionResidual.data, input, count: rows * C)
        layerNormForward(out: a.attentionNormed.data, mean: a.attentionMean.data, rstd: a.attentionRstd.data,
                         inp: a.attentionResidual.data, weight: w.attentionNorm.weight.data,
                         bias: w.attentionNorm.bias.data, rows: rows, channels: C, eps: config.layerNormEps)
        // Feed-forward: (B, T, C) → GELU (B, T, F) → (B, T, C), dropout, residual, LayerNorm.
        linearForward(out: a.intermediate.data, inp: a.attentionNormed.data, weight: w.intermediate.weight.data,
                      bias: w.intermediate.bias.data, rows: rows, inFeatures: C, outFeatures: F)
        geluForward(out: a.activated.data, inp: a.intermediate.data, count: rows * F)
        linearForward(out: a.outputResidual.data, inp: a.activated.data, weight: w.output.weight.data,
                      bias: w.output.bias.data, rows: rows, inFeatures: F, outFeatures: C)
        if let d = outputDropout {
            dropoutForward(out: a.outputResidual.data, inp: a.outputResidual.data, count: rows * C, dropout: d)
        }
        accumulate(into: a.outputResidual.data, a.attentionNormed.data, count: rows * C)
        layerNormForward(out: a.output.data, mean: a.outputMean.data, rstd: a.outputRstd.data,
                         inp: a.outputResidual.data, weight: w.outputNorm.weight.data,
                         bias: w.outputNorm.bias.data, rows: rows, channels: C, eps: config.layerNormEps)
    }
}

/// A view of the encoder's outputs for one batch, valid until the encoder's next call
/// (which reuses the buffers); it keeps them alive, so it never dangles.
public struct EncoderOutput {
    public let batch: Int, length: Int, channels: Int
    let buffers: AnyObject
    /// (B, T, C) the last layer's hidden states.
    public let lastHiddenState: UnsafePointer<Float>
    /// (B, C) the pooler's output.
    public let pooled: UnsafePointer<Float>

    init(batch: Int, length: Int, channels: Int, lastHiddenState: UnsafePointer<Float>, pooled: UnsafePointer<Float>,
         buffers: AnyObject) {
        self.batch = batch
        self.length = length
        self.channels = channels
        self.lastHiddenState = lastHiddenState
        self.pooled = pooled
        self.buffers = buffers
    }

    /// Hidden state of sequence `b` at position `t`, as an array of C floats.
    public func hidden(_ b: Int, _ t: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: lastHiddenState + (b * length + t) * channels, count: channels))
    }

    /// Pooled output of sequence `b`, as an array of C floats.
    public func pooledOutput(_ b: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: pooled + b * channels, count: channels))
    }
}
