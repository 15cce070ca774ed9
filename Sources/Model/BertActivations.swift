import Kernels

/// Sizes of one encoder pass: B sequences of T positions (real tokens plus any
/// input-level prompt tokens), attending over S = T + key/value prompt positions.
struct PassShape: Equatable {
    let batch: Int, length: Int, keys: Int
    var rows: Int { batch * length }
    var keyRows: Int { batch * keys }

    /// Whether buffers planned for `self` hold a pass of `shape`.
    func holds(_ shape: PassShape) -> Bool {
        shape.batch <= batch && shape.length <= length && shape.keys <= keys
    }
}

/// What one transformer layer's forward pass keeps for its backward pass.
/// Every buffer is sized for the workspace's capacity; a batch uses a prefix.
final class LayerActivations {
    let q, k, v: Tensor               // (B, T, C) projections of the tokens
    let keys, values: Tensor          // (B, S, C) key/value prompts then the tokens' k, v (only with prompts)
    let probs: Tensor                 // (B, H, T, S) before dropout
    let context: Tensor               // (B, T, C) attention output, heads concatenated
    let attentionResidual: Tensor     // (B, T, C) input of the attention LayerNorm
    let attentionMean, attentionRstd: Tensor  // (B, T)
    let attentionNormed: Tensor       // (B, T, C)
    let intermediate: Tensor          // (B, T, F) before GELU
    let activated: Tensor             // (B, T, F) after GELU
    let outputResidual: Tensor        // (B, T, C) input of the output LayerNorm
    let outputMean, outputRstd: Tensor        // (B, T)
    let output: Tensor                // (B, T, C) the layer's output
    let firstPositions: Tensor        // (B, C) position 0 of the input, when the layer computes only that position

    init(sequences: Int, rows: Int, keyRows: Int, withPrompts: Bool, probabilities: Int, channels c: Int, intermediate f: Int) {
        q = Tensor(shape: [rows, c]); k = Tensor(shape: [rows, c]); v = Tensor(shape: [rows, c])
        keys = Tensor(shape: [withPrompts ? keyRows : 0, c]); values = Tensor(shape: [withPrompts ? keyRows : 0, c])
        probs = Tensor(shape: [probabilities])
        context = Tensor(shape: [rows, c])
        attentionResidual = Tensor(shape: [rows, c])
        attentionMean = Tensor(shape: [rows]); attentionRstd = Tensor(shape: [rows])
        attentionNormed = Tensor(shape: [rows, c])
        intermediate = Tensor(shape: [rows, f]); activated = Tensor(shape: [rows, f])
        outputResidual = Tensor(shape: [rows, c])
        outputMean = Tensor(shape: [rows]); outputRstd = Tensor(shape: [rows])
        output = Tensor(shape: [rows, c])
        firstPositions = Tensor(shape: [sequences, c])
    }
}

/// The encoder's forward-pass buffers, planned once for a pass shape and reused
/// for every batch that fits, so no step allocates.
///
/// Only layers from `keptFrom` up keep their activations for a backward pass; the layers
/// below it (frozen ones under Freeze tuning, all of them when only predicting) run a chunk of
/// `frozenChunk` sequences at a time through two shared buffer sets sized for the chunk, and
/// only their last output is kept for the whole batch (`frozenOutput`), so their memory is
/// hardly spent.
final class BertActivations {
    let capacity: PassShape
    let withDropout: Bool, withPrompts: Bool
    let keptFrom: Int
    /// Sequences per chunk through the layers below `keptFrom` (`frozenChunkTokens` tokens or one sequence).
    let frozenChunk: Int
    let frozenOutput: Tensor              // (B, T, C) output of layer keptFrom − 1 (when keptFrom > 0)
    let embeddingSum: Tensor              // (B, T, C) word (or prompt) + position + token type
    let embeddingMean, embeddingRstd: Tensor  // (B, T)
    let embedded: Tensor                  // (B, T, C) after LayerNorm (and dropout)
    var inputIds, positionIds, tokenTypeIds: [Int32]  // (B, T)
    var keyMask: [Float]                  // (B, S)
    let layers: [LayerActivations]
    let attentionScratch: Tensor          // T · S per thread: a head's dropped probabilities
    let classifierTokens: Tensor          // (B, C) hidden state at position 0
    let pooled: Tensor                    // (B, C) tanh(dense(classifierTokens))

    init(config: BertConfig, shape: PassShape, withDropout: Bool, withPrompts: Bool, keptFrom: Int, frozenChunkTokens: Int) {
        capacity = shape
        self.keptFrom = keptFrom
        frozenChunk = keptFrom > 0 ? min(shape.batch, max(1, frozenChunkTokens / max(shape.length, 1))) : shape.batch
        self.withDropout = withDropout
        self.withPrompts = withPrompts
        let (rows, c) = (shape.rows, config.hiddenSize)
        embeddingSum = Tensor(shape: [rows, c])
        embeddingMean = Tensor(shape: [rows]); embeddingRstd = Tensor(shape: [rows])
        embedded = Tensor(shape: [rows, c])
        inputIds = Array(repeating: 0, count: rows)
        positionIds = Array(repeating: 0, count: rows)
        tokenTypeIds = Array(repeating: 0, count: rows)
        keyMask = Array(repeating: 0, count: shape.keyRows)
        let make = { (sequences: Int) in
            LayerActivations(sequences: sequences, rows: sequences * shape.length, keyRows: sequences * shape.keys, withPrompts: withPrompts,
                             probabilities: sequences * config.heads * shape.length * shape.keys,
                             channels: c, intermediate: config.intermediateSize)
        }
        // A layer reads its input (the previous layer's output) before it writes its own, but two
        // alternating sets keep that true without relying on the order within a layer.
        let shared = keptFrom > 0 ? [make(frozenChunk), make(frozenChunk)] : []
        layers = (0..<config.layers).map { $0 < keptFrom ? shared[$0 % 2] : make(shape.batch) }
        frozenOutput = Tensor(shape: [keptFrom > 0 ? rows : 0, c])
        attentionScratch = Tensor(shape: [withDropout ? Parallelism.threads * shape.length * shape.keys : 0])
        classifierTokens = Tensor(shape: [shape.batch, c])
        pooled = Tensor(shape: [shape.batch, c])
    }

    /// (B, T, C) the input of layer `index` for the whole batch.
    func layerInput(_ index: Int) -> UnsafePointer<Float> {
        if index == 0 { return UnsafePointer(embedded.data) }
        return UnsafePointer(index <= keptFrom ? frozenOutput.data : layers[index - 1].output.data)
    }

    /// Whether a pass of this shape fits these buffers.
    func fits(_ shape: PassShape, withDropout: Bool, withPrompts: Bool, keptFrom: Int) -> Bool {
        capacity.holds(shape) && (!withDropout || self.withDropout) && (!withPrompts || self.withPrompts)
            && self.keptFrom <= keptFrom
    }
}

/// Gradient buffers of the backward pass, planned like the activations.
final class BertGradientBuffers {
    let capacity: PassShape
    let hidden, hiddenBelow: Tensor       // (B, T, C) gradient of a layer's output and of its input
    let residual, normed, branch: Tensor  // (B, T, C)
    let context, q: Tensor                // (B, T, C)
    let k, v: Tensor                      // (B, T, C) gradients of the tokens' k, v projections
    let keys, values: Tensor              // (B, S, C) gradients of the attended keys and values
    let activated, intermediate: Tensor   // (B, T, F)
    let attentionScratch: Tensor          // 2 · T · S per thread
    let classifierTokens, pooled: Tensor  // (B, C)
    let firstPositions: Tensor            // (B, C) gradient of a layer input's position 0, when only it had a query

    init(config: BertConfig, shape: PassShape) {
        capacity = shape
        let (rows, c, f) = (shape.rows, config.hiddenSize, config.intermediateSize)
        hidden = Tensor(shape: [rows, c]); hiddenBelow = Tensor(shape: [rows, c])
        residual = Tensor(shape: [rows, c]); normed = Tensor(shape: [rows, c]); branch = Tensor(shape: [rows, c])
        context = Tensor(shape: [rows, c]); q = Tensor(shape: [rows, c])
        k = Tensor(shape: [rows, c]); v = Tensor(shape: [rows, c])
        keys = Tensor(shape: [shape.keyRows, c]); values = Tensor(shape: [shape.keyRows, c])
        activated = Tensor(shape: [rows, f]); intermediate = Tensor(shape: [rows, f])
        attentionScratch = Tensor(shape: [AttentionShape.scratchCount(queries: shape.length, keys: shape.keys)])
        classifierTokens = Tensor(shape: [shape.batch, c]); pooled = Tensor(shape: [shape.batch, c])
        firstPositions = Tensor(shape: [shape.batch, c])
    }
}
