/// Sizes of one multi-head attention call.
///
/// Queries come from T positions of each sequence; each query attends over S = P + K keys:
/// P prefix rows shared by the whole batch (deep prompts, prefix tuning), then the sequence's
/// own K keys.
public struct AttentionShape: Sendable {
    public let batch: Int, queries: Int, keys: Int, prefix: Int, channels: Int, heads: Int
    public var headSize: Int { channels / heads }
    /// S: the positions each query attends over, prefix first.
    public var attended: Int { prefix + keys }

    public init(batch: Int, queries: Int, keys: Int, prefix: Int = 0, channels: Int, heads: Int) {
        precondition(channels % heads == 0, "\(channels) channels do not split into \(heads) heads")
        self.batch = batch
        self.queries = queries
        self.keys = keys
        self.prefix = prefix
        self.channels = channels
        self.heads = heads
    }

    /// Elements of one probability tensor (B, H, T, S).
    public var probabilityCount: Int { batch * heads * queries * attended }

    /// Floats of scratch space the forward pass needs: the prefix's keys and values repeated for
    /// every sequence, (B, P, C) each (oneDNN runs a product whose operand is shared across the
    /// batch only in its reference code, far slower than the copy), and with dropout the dropped
    /// probabilities, (B, H, T, S).
    public func forwardScratchCount(withDropout: Bool) -> Int { prefixCopyCount + (withDropout ? probabilityCount : 0) }

    /// Floats of scratch space the backward pass needs: the repeated prefix, then the scores'
    /// gradient and the dropped probabilities, (B, H, T, S) each.
    public var scratchCount: Int { prefixCopyCount + 2 * probabilityCount }

    fileprivate var prefixCopyCount: Int { 2 * batch * prefix * channels }
}

/// Key and value rows that each sequence of a batch attends to before its own: P rows of
/// C channels, sequence b's row i at `keys + b · sequenceStride + i · stride` (so a column slice
/// of a wider prompt tensor is read in place). A `sequenceStride` of 0 shares the rows across the
/// batch (training one prompt); a mixed batch of tasks gives each sequence its own.
public struct AttentionPrefix {
    public let keys: UnsafePointer<Float>, values: UnsafePointer<Float>
    public let stride: Int, sequenceStride: Int

    public init(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int, sequenceStride: Int = 0) {
        self.keys = keys
        self.values = values
        self.stride = stride
        self.sequenceStride = sequenceStride
    }
}

/// Scaled dot-product attention, every head at once; heads are column slices of (B, ·, C). Each
/// product runs once over all sequences and heads (a batched product reading the slices in place),
/// the softmax and dropout between them head by head over the threads.
/// - Parameters:
///   - out: (B, T, C) attention output, heads concatenated.
///   - probs: (B, H, T, S) softmax probabilities (before dropout), saved for the backward pass,
///     which redraws the dropout masks rather than keeping the dropped copy.
///   - scratch: `shape.forwardScratchCount(withDropout:)` floats; needed only with dropout or a prefix.
///   - q: (B, T, C); k, v: (B, K, C); prefix: `shape.prefix` rows (nil when there are none);
///     keyMask: (B, S), 1 = attend, 0 = padding.
public func attentionForward(
    out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, prefix: AttentionPrefix? = nil,
    keyMask: UnsafePointer<Float>, shape: AttentionShape, dropout: SequenceDropout?,
    scratch: UnsafeMutablePointer<Float>?
) {
    let (T, K, P, S, C, hs) = (shape.queries, shape.keys, shape.prefix, shape.attended, shape.channels, shape.headSize)
    let H = shape.heads
    precondition((prefix == nil) == (P == 0), "a prefix of \(P) rows needs its keys and values")
    let scale = 1 / Float(hs).squareRoot()
    let layout = HeadLayout(shape)
    let (prefixKeys, prefixValues) = repeatPrefix(prefix, into: scratch, shape: shape)
    let (queries, scores) = (shape.batch * T * C, shape.probabilityCount)
    // scores (T, S) = scale · q_h (T, hs) · [prefix k; k_h]ᵀ: the prefix's columns, then the sequence's own.
    MatrixEngine.sharingRounding(of: q, count: queries) {
        if let prefixKeys {
            gemm(transA: false, transB: true, m: T, n: P, k: hs, alpha: scale, a: q, lda: C, b: prefixKeys, ldb: C,
                 beta: 0, c: probs, ldc: S,
                 batch: layout.batch(a: layout.queries, b: layout.prefixShares, c: layout.scores))
        }
        gemm(transA: false, transB: true, m: T, n: K, k: hs, alpha: scale, a: q, lda: C, b: k, ldb: C,
             beta: 0, c: probs + P, ldc: S, batch: layout.batch(a: layout.queries, b: layout.keys, c: layout.scores))
    }
    forEachHead(shape) { head in
        maskedSoftmaxForward(probs + head * T * S, mask: keyMask + head / H * S, rows: T, columns: S)
    }
    var weights = UnsafePointer(probs)
    if let dropout, let scratch {
        let dropped = scratch + shape.prefixCopyCount
        dropProbabilities(into: dropped, probs: probs, shape: shape, dropout: dropout)
        weights = UnsafePointer(dropped)
    }
    // out_h (T, hs) = weights (T, S) · [prefix v; v_h] (S, hs), written into head h's columns.
    MatrixEngine.sharingRounding(of: weights, count: scores) {
        if let prefixValues {
            gemm(transA: false, transB: false, m: T, n: hs, k: P, a: weights, lda: S, b: prefixValues, ldb: C,
                 beta: 0, c: out, ldc: C,
                 batch: layout.batch(a: layout.scores, b: layout.prefixShares, c: layout.queries))
        }
        gemm(transA: false, transB: false, m: T, n: hs, k: K, a: weights + P, lda: S, b: v, ldb: C,
             beta: prefix == nil ? 0 : 1, c: out, ldc: C,
             batch: layout.batch(a: layout.scores, b: layout.keys, c: layout.queries))
    }
}

/// Attention backward; accumulates into dq (B, T, C), dk and dv (B, K, C), and, with a prefix,
/// into `prefixGradients`: (B, P, C) each for its keys and values, every sequence's share apart,
/// for the caller to sum. `scratch` holds `shape.scratchCount` floats; `probs` are the forward's.
public func attentionBackward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    prefixGradients: (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>)? = nil,
    dout: UnsafePointer<Float>, probs: UnsafePointer<Float>,
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, prefix: AttentionPrefix? = nil,
    scratch: UnsafeMutablePointer<Float>, shape: AttentionShape, dropout: SequenceDropout?
) {
    let (T, K, P, S, C, hs) = (shape.queries, shape.keys, shape.prefix, shape.attended, shape.channels, shape.headSize)
    precondition((prefix == nil) == (P == 0) && (prefixGradients == nil || prefix != nil),
                 "a prefix of \(P) rows needs its keys and values")
    let scale = 1 / Float(hs).squareRoot()
    let layout = HeadLayout(shape)
    let (prefixKeys, prefixValues) = repeatPrefix(prefix, into: scratch, shape: shape)
    let dscores = scratch + shape.prefixCopyCount, dropped = dscores + shape.probabilityCount
    // The forward's dropped probabilities, redrawn from the same masks.
    var weights = probs
    if let dropout {
        dropProbabilities(into: dropped, probs: probs, shape: shape, dropout: dropout)
        weights = UnsafePointer(dropped)
    }
    let (queries, scores) = (shape.batch * T * C, shape.probabilityCount)
    // The larger copy outermost: scopes' copy buffers are kept by depth.
    MatrixEngine.sharingRounding(of: weights, count: scores) {
        MatrixEngine.sharingRounding(of: dout, count: queries) {
            // dscores (T, S) first holds the gradient of the (dropped) weights: dout_h (T, hs) · [prefix v; v_h]ᵀ
            if let prefixValues {
                gemm(transA: false, transB: true, m: T, n: P, k: hs, a: dout, lda: C, b: prefixValues, ldb: C,
                     beta: 0, c: dscores, ldc: S,
                     batch: layout.batch(a: layout.queries, b: layout.prefixShares, c: layout.scores))
            }
            gemm(transA: false, transB: true, m: T, n: K, k: hs, a: dout, lda: C, b: v, ldb: C,
                 beta: 0, c: dscores + P, ldc: S,
                 batch: layout.batch(a: layout.queries, b: layout.keys, c: layout.scores))
            // d[prefix v; v_h] (S, hs) += weightsᵀ · dout_h
            if let prefixGradients {
                gemm(transA: true, transB: false, m: P, n: hs, k: T, a: weights, lda: S, b: dout, ldb: C,
                     beta: 1, c: prefixGradients.values, ldc: C,
                     batch: layout.batch(a: layout.scores, b: layout.queries, c: layout.prefixShares))
            }
            gemm(transA: true, transB: false, m: K, n: hs, k: T, a: weights + P, lda: S, b: dout, ldb: C,
                 beta: 1, c: dv, ldc: C, batch: layout.batch(a: layout.scores, b: layout.queries, c: layout.keys))
        }
    }
    // Through the dropout (when on) and the softmax, in place: the unscaled scores' gradient.
    forEachHead(shape) { head in
        softmaxBackward(dscores + head * T * S, probs: probs + head * T * S, rows: T, columns: S,
                        dropped: dropout == nil ? nil : UnsafePointer(dropped + head * T * S),
                        scale: dropout.map { 1 / (1 - $0.rate) } ?? 1)
    }
    // dq_h (T, hs) += scale · dscores · [prefix k; k_h]; d[prefix k; k_h] (S, hs) += scale · dscoresᵀ · q_h
    MatrixEngine.sharingRounding(of: dscores, count: scores) {
        if let prefixKeys {
            gemm(transA: false, transB: false, m: T, n: hs, k: P, alpha: scale, a: dscores, lda: S, b: prefixKeys,
                 ldb: C, beta: 1, c: dq, ldc: C,
                 batch: layout.batch(a: layout.scores, b: layout.prefixShares, c: layout.queries))
        }
        gemm(transA: false, transB: false, m: T, n: hs, k: K, alpha: scale, a: dscores + P, lda: S, b: k, ldb: C,
             beta: 1, c: dq, ldc: C, batch: layout.batch(a: layout.scores, b: layout.keys, c: layout.queries))
        MatrixEngine.sharingRounding(of: q, count: queries) {
            if let prefixGradients {
                gemm(transA: true, transB: false, m: P, n: hs, k: T, alpha: scale, a: dscores, lda: S, b: q, ldb: C,
                     beta: 1, c: prefixGradients.keys, ldc: C,
                     batch: layout.batch(a: layout.scores, b: layout.queries, c: layout.prefixShares))
            }
            gemm(transA: true, transB: false, m: K, n: hs, k: T, alpha: scale, a: dscores + P, lda: S, b: q, ldb: C,
                 beta: 1, c: dk, ldc: C, batch: layout.batch(a: layout.scores, b: layout.queries, c: layout.keys))
        }
    }
}

/// The prefix's keys and values repeated for every sequence into the start of `scratch`, (B, P, C)
/// each (nil, nil without a prefix).
private func repeatPrefix(_ prefix: AttentionPrefix?, into scratch: UnsafeMutablePointer<Float>?, shape: AttentionShape)
    -> (keys: UnsafePointer<Float>?, values: UnsafePointer<Float>?) {
    guard let prefix, let scratch else { return (nil, nil) }
    let (P, C) = (shape.prefix, shape.channels)
    let keys = scratch, values = scratch + shape.batch * P * C
    for b in 0..<shape.batch {
        for p in 0..<P {
            let row = b * prefix.sequenceStride + p * prefix.stride
            (keys + (b * P + p) * C).update(from: prefix.keys + row, count: C)
            (values + (b * P + p) * C).update(from: prefix.values + row, count: C)
        }
    }
    return (UnsafePointer(keys), UnsafePointer(values))
}

/// Runs `body` for every (sequence, head) index b · H + h, split over the threads, timed as attention's element-wise work.
private func forEachHead(_ shape: AttentionShape, _ body: (Int) -> Void) {
    WorkCounter.timed(&WorkCounter.attentionSeconds) {
        parallelFor(shape.batch * shape.heads) { heads in for head in heads { body(head) } }
    }
}

/// dropped (B, H, T, S) = the probabilities through each head's dropout mask (sequence b's, derived by head):
/// the forward draws them, the backward redraws the same.
private func dropProbabilities(into dropped: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>,
                               shape: AttentionShape, dropout: SequenceDropout) {
    let size = shape.queries * shape.attended
    forEachHead(shape) { head in
        dropoutForward(out: dropped + head * size, inp: probs + head * size, count: size,
                       dropout: dropout.sequence(head / shape.heads).derived(UInt64(head % shape.heads)), parallel: false)
    }
}

/// Where head (b, h) of each attention tensor starts, as (sequence, head) strides.
private struct HeadLayout {
    let counts: (Int, Int)
    /// (B, T, C) queries and outputs; (B, K, C) keys and values; (B, H, T, S) scores;
    /// (B, P, C) the repeated prefix and each sequence's share of its gradient.
    let queries: (Int, Int), keys: (Int, Int), scores: (Int, Int), prefixShares: (Int, Int)

    init(_ shape: AttentionShape) {
        let (T, K, P, S, C, hs) = (shape.queries, shape.keys, shape.prefix, shape.attended, shape.channels, shape.headSize)
        counts = (shape.batch, shape.heads)
        queries = (T * C, hs)
        keys = (K * C, hs)
        scores = (shape.heads * T * S, T * S)
        prefixShares = (P * C, hs)
    }

    func batch(a: (Int, Int), b: (Int, Int), c: (Int, Int)) -> ProductBatch {
        ProductBatch(counts: counts, a: a, b: b, c: c)
    }
}
