import Kernels

/// Sizes of one encoder pass: B sequences of T positions (real tokens plus any
/// input-level prompt tokens), attending over S = P + T: P key/value prompt positions first.
struct PassShape: Equatable {
    let batch: Int, length: Int, prompts: Int
    var keys: Int { prompts + length }
    var rows: Int { batch * length }
    var keyRows: Int { batch * keys }

    /// The attention of a layer that computes every position of this shape: the largest it plans for.
    func attention(_ config: BertConfig) -> AttentionShape {
        AttentionShape(batch: batch, queries: length, keys: length, prefix: prompts, channels: config.hiddenSize,
                       heads: config.heads)
    }

    /// Whether buffers planned for `self` hold a pass of `shape`.
    func holds(_ shape: PassShape) -> Bool {
        shape.batch <= batch && shape.length <= length && shape.prompts <= prompts
    }

    /// The smallest shape that holds both.
    func merged(with other: PassShape) -> PassShape {
        PassShape(batch: max(batch, other.batch), length: max(length, other.length), prompts: max(prompts, other.prompts))
    }
}

/// What a pass needs of the forward buffers. Buffers planned for one plan serve every plan
/// it covers, so a run plans once for its largest batch.
struct ActivationPlan: Equatable {
    var shape: PassShape
    var withDropout: Bool
    /// The lowest layer whose activations are kept for a backward pass.
    var keptFrom: Int
    /// Whether the top layer computes every position (else only position 0, `OutputPositions.first`).
    var everyTopPosition: Bool

    func covers(_ other: ActivationPlan) -> Bool {
        shape.holds(other.shape) && (withDropout || !other.withDropout) && keptFrom <= other.keptFrom
            && (everyTopPosition || !other.everyTopPosition)
    }

    /// The smallest plan that covers both.
    func merged(with other: ActivationPlan) -> ActivationPlan {
        ActivationPlan(shape: shape.merged(with: other.shape),
                       withDropout: withDropout || other.withDropout,
                       keptFrom: min(keptFrom, other.keptFrom), everyTopPosition: everyTopPosition || other.everyTopPosition)
    }
}

/// What one transformer layer's forward pass keeps for its backward pass, for B sequences of
/// which the layer computes `positions` (T, or 1 at the top when only position 0 is read).
/// Every buffer is sized for the plan's capacity; a batch uses a prefix.
final class LayerActivations {
    let q: Tensor                     // (B, positions, C) queries
    let k, v: Tensor                  // (B, T, C) the tokens' key and value projections
    let probs: Tensor                 // (B, H, positions, S) before dropout
    /// (B, positions, C) attention output, heads concatenated, and the attention LayerNorm's output:
    /// read in backward only as the inputs of the output projection and FF-in, so a layer keeps
    /// its own only while that layer trains (see `keep`), else writes the shared ones.
    private(set) var context: Tensor, attentionNormed: Tensor
    private var ownContext: Tensor?, ownNormed: Tensor?
    private let ownCount: Int
    let attentionResidual: Tensor     // (B, positions, C) input of the attention LayerNorm
    let attentionMean, attentionRstd: Tensor  // (B, positions)
    let intermediate: Tensor          // (B, positions, F) before GELU (after it is not kept: see BertActivations)
    let outputResidual: Tensor        // (B, positions, C) input of the output LayerNorm
    let outputMean, outputRstd: Tensor        // (B, positions)
    /// (B, positions, C) the layer's output: the next layer's input, which backward reads only
    /// for that layer's query, key and value gradients; kept as `context` is (see `keep`).
    private(set) var output: Tensor
    private var ownOutput: Tensor?
    let firstPositions: Tensor        // (B, C) position 0 of the input, when the layer computes only that position

    init(config: BertConfig, sequences b: Int, shape: PassShape, positions: Int,
         shared: (context: Tensor, normed: Tensor, output: Tensor)) {
        let (c, f, queryRows) = (config.hiddenSize, config.intermediateSize, b * positions)
        (context, attentionNormed, ownCount) = (shared.context, shared.normed, queryRows * c)
        q = Tensor(shape: [queryRows, c])
        k = Tensor(shape: [b * shape.length, c]); v = Tensor(shape: [b * shape.length, c])
        probs = Tensor(shape: [b * config.heads * positions * shape.keys])
        attentionResidual = Tensor(shape: [queryRows, c])
        attentionMean = Tensor(shape: [queryRows]); attentionRstd = Tensor(shape: [queryRows])
        intermediate = Tensor(shape: [queryRows, f])
        outputResidual = Tensor(shape: [queryRows, c])
        outputMean = Tensor(shape: [queryRows]); outputRstd = Tensor(shape: [queryRows])
        output = shared.output
        firstPositions = Tensor(shape: [b, c])   // small; the chunked sets may hold the top layer too
    }

    /// Before a forward pass that keeps activations: this layer's own buffers where a backward
    /// will read them (made once, then kept), else the shared ones.
    func keep(context keepContext: Bool, normed keepNormed: Bool, output keepOutput: Bool,
              shared: (context: Tensor, normed: Tensor, output: Tensor)) {
        func own(_ buffer: inout Tensor?) -> Tensor {
            if buffer == nil { buffer = Tensor(shape: [ownCount]) }
            return buffer!
        }
        context = keepContext ? own(&ownContext) : shared.context
        attentionNormed = keepNormed ? own(&ownNormed) : shared.normed
        output = keepOutput ? own(&ownOutput) : shared.output
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
    let plan: ActivationPlan
    var capacity: PassShape { plan.shape }
    var keptFrom: Int { plan.keptFrom }
    /// Sequences per chunk through the layers below `keptFrom` (`frozenChunkTokens` tokens or one sequence).
    let frozenChunk: Int
    let frozenOutput: Tensor              // (B, T, C) output of layer keptFrom − 1 (when keptFrom > 0)
    let embeddingSum: Tensor              // (B, T, C) word (or prompt) + position + token type
    let embeddingMean, embeddingRstd: Tensor  // (B, T)
    let embedded: Tensor                  // (B, T, C) after LayerNorm (and dropout)
    var inputIds, positionIds, tokenTypeIds: [Int32]  // (B, T)
    var keyMask: [Float]                  // (B, S)
    let layers: [LayerActivations]
    let attentionScratch: Tensor          // the repeated prefix; with dropout, the dropped probabilities
    /// (B, T, F) a layer's GELU output, read at once by its FF-out product and not kept: the
    /// backward recomputes it from the layer's pre-GELU values where a gradient needs it
    /// (a trainable FF-out layer), which costs a GELU pass and saves (B, T, F) a layer.
    let activated: Tensor
    /// (B, T, C) the context and attention-normed values of layers whose backward does not read
    /// them, and two for the outputs no backward reads (layer i writes one while reading the other).
    let sharedContext, sharedNormed: Tensor
    let sharedOutputs: [Tensor]

    /// The shared buffers layer `index` writes into where it keeps nothing of its own.
    func shared(forLayer index: Int) -> (context: Tensor, normed: Tensor, output: Tensor) {
        (sharedContext, sharedNormed, sharedOutputs[index % 2])
    }
    let classifierTokens: Tensor          // (B, C) hidden state at position 0
    let pooled: Tensor                    // (B, C) tanh(dense(classifierTokens))

    init(config: BertConfig, plan: ActivationPlan, frozenChunkTokens: Int) {
        self.plan = plan
        let (shape, keptFrom) = (plan.shape, plan.keptFrom)
        frozenChunk = keptFrom > 0 ? min(shape.batch, max(1, frozenChunkTokens / max(shape.length, 1))) : shape.batch
        let (rows, c) = (shape.rows, config.hiddenSize)
        embeddingSum = Tensor(shape: [rows, c])
        embeddingMean = Tensor(shape: [rows]); embeddingRstd = Tensor(shape: [rows])
        embedded = Tensor(shape: [rows, c])
        inputIds = Array(repeating: 0, count: rows)
        positionIds = Array(repeating: 0, count: rows)
        tokenTypeIds = Array(repeating: 0, count: rows)
        keyMask = Array(repeating: 0, count: shape.keyRows)
        sharedContext = Tensor(shape: [rows, c]); sharedNormed = Tensor(shape: [rows, c])
        sharedOutputs = [Tensor(shape: [rows, c]), Tensor(shape: [rows, c])]
        let make = { [sharedContext, sharedNormed, sharedOutputs] (index: Int, sequences: Int, positions: Int) in
            LayerActivations(config: config, sequences: sequences, shape: shape, positions: positions,
                             shared: (sharedContext, sharedNormed, sharedOutputs[index % 2]))
        }
        let topPositions = plan.everyTopPosition ? shape.length : 1
        // A layer reads its input (the previous layer's output) before it writes its own, but two
        // alternating sets keep that true without relying on the order within a layer. They are
        // sized for every position, as they may hold the top layer too.
        let chunkSets = keptFrom > 0 ? [make(0, frozenChunk, shape.length), make(1, frozenChunk, shape.length)] : []
        layers = (0..<config.layers).map { index in
            index < keptFrom ? chunkSets[index % 2]
                : make(index, shape.batch, index == config.layers - 1 ? topPositions : shape.length)
        }
        frozenOutput = Tensor(shape: [keptFrom > 0 ? rows : 0, c])
        attentionScratch = Tensor(shape: [shape.attention(config).forwardScratchCount(withDropout: plan.withDropout)])
        classifierTokens = Tensor(shape: [shape.batch, c])
        pooled = Tensor(shape: [shape.batch, c])
        activated = Tensor(shape: [rows, config.intermediateSize])
    }

    /// (B, T, C) the input of layer `index` for the whole batch.
    func layerInput(_ index: Int) -> UnsafePointer<Float> {
        if index == 0 { return UnsafePointer(embedded.data) }
        return UnsafePointer(index <= keptFrom ? frozenOutput.data : layers[index - 1].output.data)
    }
}

/// Gradient buffers of the backward pass, planned like the activations.
final class BertGradientBuffers {
    let capacity: PassShape
    let hidden, hiddenBelow: Tensor       // (B, T, C) gradient of a layer's output and of its input
    let residual, normed, branch: Tensor  // (B, T, C)
    let context, q: Tensor                // (B, T, C)
    let k, v: Tensor                      // (B, T, C) gradients of the tokens' k, v projections
    let promptKeys, promptValues: Tensor  // (B, P, C) each sequence's share of a layer's prompt rows' gradient
    let activated: Tensor                 // (B, T, F) through GELU's backward in place
    let attentionScratch: Tensor          // the repeated prefix, the scores' gradient, the dropped probabilities
    let classifierTokens, pooled: Tensor  // (B, C)
    let firstPositions: Tensor            // (B, C) gradient of a layer input's position 0, when only it had a query

    init(config: BertConfig, shape: PassShape) {
        capacity = shape
        let (rows, c, f) = (shape.rows, config.hiddenSize, config.intermediateSize)
        hidden = Tensor(shape: [rows, c]); hiddenBelow = Tensor(shape: [rows, c])
        residual = Tensor(shape: [rows, c]); normed = Tensor(shape: [rows, c]); branch = Tensor(shape: [rows, c])
        context = Tensor(shape: [rows, c]); q = Tensor(shape: [rows, c])
        k = Tensor(shape: [rows, c]); v = Tensor(shape: [rows, c])
        let promptRows = shape.batch * shape.prompts
        promptKeys = Tensor(shape: [promptRows, c]); promptValues = Tensor(shape: [promptRows, c])
        activated = Tensor(shape: [rows, f])
        attentionScratch = Tensor(shape: [shape.attention(config).scratchCount])
        classifierTokens = Tensor(shape: [shape.batch, c]); pooled = Tensor(shape: [shape.batch, c])
        firstPositions = Tensor(shape: [shape.batch, c])
    }
}
