import Kernels

/// What one transformer layer's forward pass keeps for its backward pass.
/// Every buffer is sized for the workspace's capacity; a batch uses a prefix.
final class LayerActivations {
    let q, k, v: Tensor               // (B, T, C)
    let probs, dropped: Tensor        // (B, H, T, S)
    let context: Tensor               // (B, T, C) attention output, heads concatenated
    let attentionResidual: Tensor     // (B, T, C) input of the attention LayerNorm
    let attentionMean, attentionRstd: Tensor  // (B, T)
    let attentionNormed: Tensor       // (B, T, C)
    let intermediate: Tensor          // (B, T, F) before GELU
    let activated: Tensor             // (B, T, F) after GELU
    let outputResidual: Tensor        // (B, T, C) input of the output LayerNorm
    let outputMean, outputRstd: Tensor        // (B, T)
    let output: Tensor                // (B, T, C) the layer's output

    init(rows: Int, probabilities: Int, channels c: Int, intermediate f: Int, dropout: Bool) {
        q = Tensor(shape: [rows, c]); k = Tensor(shape: [rows, c]); v = Tensor(shape: [rows, c])
        probs = Tensor(shape: [probabilities])
        dropped = Tensor(shape: [dropout ? probabilities : 0])
        context = Tensor(shape: [rows, c])
        attentionResidual = Tensor(shape: [rows, c])
        attentionMean = Tensor(shape: [rows]); attentionRstd = Tensor(shape: [rows])
        attentionNormed = Tensor(shape: [rows, c])
        intermediate = Tensor(shape: [rows, f]); activated = Tensor(shape: [rows, f])
        outputResidual = Tensor(shape: [rows, c])
        outputMean = Tensor(shape: [rows]); outputRstd = Tensor(shape: [rows])
        output = Tensor(shape: [rows, c])
    }
}

/// The encoder's forward-pass buffers, planned once for a number of token rows
/// and reused for every batch that fits, so no step allocates.
final class BertActivations {
    let rows: Int, probabilities: Int, withDropout: Bool
    let embeddingSum: Tensor              // (B, T, C) word + position + token type
    let embeddingMean, embeddingRstd: Tensor  // (B, T)
    let embedded: Tensor                  // (B, T, C) after LayerNorm (and dropout)
    var positionIds: [Int32]              // (B, T)
    let layers: [LayerActivations]
    let classifierTokens: Tensor          // (B, C) hidden state at position 0
    let pooled: Tensor                    // (B, C) tanh(dense(classifierTokens))

    init(config: BertConfig, batch: Int, length: Int, withDropout: Bool) {
        rows = batch * length
        probabilities = batch * config.heads * length * length
        self.withDropout = withDropout
        let c = config.hiddenSize
        embeddingSum = Tensor(shape: [rows, c])
        embeddingMean = Tensor(shape: [rows]); embeddingRstd = Tensor(shape: [rows])
        embedded = Tensor(shape: [rows, c])
        positionIds = Array(repeating: 0, count: rows)
        layers = (0..<config.layers).map { [rows, probabilities] _ in
            LayerActivations(rows: rows, probabilities: probabilities,
                             channels: c, intermediate: config.intermediateSize, dropout: withDropout)
        }
        // A batch of these rows may hold as many sequences as rows.
        classifierTokens = Tensor(shape: [rows, c])
        pooled = Tensor(shape: [rows, c])
    }

    /// Whether a batch of this size fits these buffers.
    func fits(batch: Int, length: Int, heads: Int, withDropout: Bool) -> Bool {
        batch * length <= rows && batch * heads * length * length <= probabilities
            && (!withDropout || self.withDropout)
    }
}
