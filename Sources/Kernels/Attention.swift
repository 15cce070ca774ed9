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

    /// Floats of scratch space the forward pass needs with dropout: T · S per thread.
    public var forwardScratchCount: Int { Self.forwardScratchCount(queries: queries, attended: attended) }

    /// Floats of scratch space the forward pass needs with dropout for T queries over S positions, any batch.
    public static func forwardScratchCount(queries: Int, attended: Int) -> Int { Parallelism.threads * queries * attended }

    /// Floats of scratch space the backward pass needs: 2 · T · S per thread.
    public var scratchCount: Int { Self.scratchCount(queries: queries, attended: attended) }

    /// Floats of scratch space the backward pass needs for T queries over S positions, any batch.
    public static func scratchCount(queries: Int, attended: Int) -> Int { Parallelism.threads * 2 * queries * attended }
}

/// Key and value rows that every sequence of a batch attends to before its own: P rows of
/// C channels, row i at `keys + i · stride` (so a column slice of a wider prompt tensor is
/// read in place, never copied per sequence).
public struct AttentionPrefix {
    public let keys: UnsafePointer<Float>, values: UnsafePointer<Float>
    public let stride: Int

    public init(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int) {
        self.keys = keys
        self.values = values
        self.stride = stride
    }
}

/// Scaled dot-product attention, every head at once; heads are column slices of (B, ·, C).
/// - Parameters:
///   - out: (B, T, C) attention output, heads concatenated.
///   - probs: (B, H, T, S) softmax probabilities (before dropout), saved for the backward pass,
///     which redraws the dropout masks rather than keeping the dropped copy.
///   - scratch: `shape.forwardScratchCount` floats for the dropped probabilities; needed only with dropout.
///   - q: (B, T, C); k, v: (B, K, C); prefix: `shape.prefix` rows (nil when there are none);
///     keyMask: (B, S), 1 = attend, 0 = padding.
public func attentionForward(
    out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, prefix: AttentionPrefix? = nil,
    keyMask: UnsafePointer<Float>, shape: AttentionShape, dropout: SequenceDropout?,
    scratch: UnsafeMutablePointer<Float>?
) {
    let (T, K, P, S, C, hs) = (shape.queries, shape.keys, shape.prefix, shape.attended, shape.channels, shape.headSize)
    precondition((prefix == nil) == (P == 0), "a prefix of \(P) rows needs its keys and values")
    let scale = 1 / Float(hs).squareRoot()
    WorkCounter.add(shape.batch * shape.heads * T, S, 2 * hs)   // scores and the weighted sum
    // Heads are independent: split them over the threads.
    parallelChunks(shape.batch * shape.heads) { chunk, heads in
        for head in heads {
            let (b, h) = (head / shape.heads, head % shape.heads)
            let p = probs + head * T * S
            let qh = q + b * T * C + h * hs, kh = k + b * K * C + h * hs, vh = v + b * K * C + h * hs
            // (T, hs) · (S, hs)ᵀ → (T, S): the prefix's columns, then the sequence's own.
            if let prefix {
                gemm(transA: false, transB: true, m: T, n: P, k: hs, alpha: scale,
                     a: qh, lda: C, b: prefix.keys + h * hs, ldb: prefix.stride, beta: 0, c: p, ldc: S)
            }
            gemm(transA: false, transB: true, m: T, n: K, k: hs, alpha: scale,
                 a: qh, lda: C, b: kh, ldb: C, beta: 0, c: p + P, ldc: S)
            maskedSoftmaxForward(p, mask: keyMask + b * S, rows: T, columns: S)
            var weights = UnsafePointer(p)
            if let dropout, let scratch {
                let d = scratch + chunk * T * S
                dropoutForward(out: d, inp: p, count: T * S, dropout: dropout.sequence(b).derived(UInt64(h)), parallel: false)
                weights = UnsafePointer(d)
            }
            // (T, S) · (S, hs) → (T, hs), written into head h's columns
            let outh = out + b * T * C + h * hs
            if let prefix {
                gemm(transA: false, transB: false, m: T, n: hs, k: P,
                     a: weights, lda: S, b: prefix.values + h * hs, ldb: prefix.stride, beta: 0, c: outh, ldc: C)
            }
            gemm(transA: false, transB: false, m: T, n: hs, k: K,
                 a: weights + P, lda: S, b: vh, ldb: C, beta: prefix == nil ? 0 : 1, c: outh, ldc: C)
        }
    }
}

/// Attention backward; accumulates into dq (B, T, C), dk and dv (B, K, C), and, with a prefix,
/// into `prefixGradients`: (B, P, C) each for its keys and values, every sequence's share apart
/// (so no two threads write one element), for the caller to sum.
/// `scratch` holds `shape.scratchCount` floats; `probs` are the forward's.
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
    WorkCounter.add(shape.batch * shape.heads * T, S, 4 * hs)   // dweights, dv, dq, dk
    parallelChunks(shape.batch * shape.heads) { chunk, heads in
        let dscores = scratch + chunk * 2 * T * S, dropped = dscores + T * S
        for head in heads {
            let (b, h) = (head / shape.heads, head % shape.heads)
            let p = probs + head * T * S
            // The forward's dropped probabilities, redrawn from the same masks.
            var weights = p
            let headDropout = dropout?.sequence(b).derived(UInt64(h))
            if let headDropout {
                dropoutForward(out: dropped, inp: p, count: T * S, dropout: headDropout, parallel: false)
                weights = UnsafePointer(dropped)
            }
            let qh = q + b * T * C + h * hs, kh = k + b * K * C + h * hs, vh = v + b * K * C + h * hs
            let doh = dout + b * T * C + h * hs
            let prefixKeyGradient = prefixGradients.map { $0.keys + b * P * C + h * hs }
            let prefixValueGradient = prefixGradients.map { $0.values + b * P * C + h * hs }
            // dscores (T, S) first holds the gradient of the (dropped) weights: dout_h (T, hs) · [prefix v; v_h]ᵀ
            if let prefix {
                gemm(transA: false, transB: true, m: T, n: P, k: hs,
                     a: doh, lda: C, b: prefix.values + h * hs, ldb: prefix.stride, beta: 0, c: dscores, ldc: S)
            }
            gemm(transA: false, transB: true, m: T, n: K, k: hs,
                 a: doh, lda: C, b: vh, ldb: C, beta: 0, c: dscores + P, ldc: S)
            // d[prefix v; v_h] (S, hs) += weightsᵀ · dout_h
            if let prefixValueGradient {
                gemm(transA: true, transB: false, m: P, n: hs, k: T,
                     a: weights, lda: S, b: doh, ldb: C, beta: 1, c: prefixValueGradient, ldc: C)
            }
            gemm(transA: true, transB: false, m: K, n: hs, k: T,
                 a: weights + P, lda: S, b: doh, ldb: C, beta: 1, c: dv + b * K * C + h * hs, ldc: C)
            // Through the dropout (when on) and the softmax, in place: the unscaled scores' gradient.
            softmaxBackward(dscores, probs: p, rows: T, columns: S, dropped: headDropout == nil ? nil : UnsafePointer(dropped),
                            scale: headDropout?.scale ?? 1)
            // dq_h (T, hs) += scale · dscores · [prefix k; k_h] ; d[prefix k; k_h] (S, hs) += scale · dscoresᵀ · q_h
            if let prefix {
                gemm(transA: false, transB: false, m: T, n: hs, k: P, alpha: scale,
                     a: dscores, lda: S, b: prefix.keys + h * hs, ldb: prefix.stride, beta: 1, c: dq + b * T * C + h * hs, ldc: C)
            }
            gemm(transA: false, transB: false, m: T, n: hs, k: K, alpha: scale,
                 a: dscores + P, lda: S, b: kh, ldb: C, beta: 1, c: dq + b * T * C + h * hs, ldc: C)
            if let prefixKeyGradient {
                gemm(transA: true, transB: false, m: P, n: hs, k: T, alpha: scale,
                     a: dscores, lda: S, b: qh, ldb: C, beta: 1, c: prefixKeyGradient, ldc: C)
            }
            gemm(transA: true, transB: false, m: K, n: hs, k: T, alpha: scale,
                 a: dscores + P, lda: S, b: qh, ldb: C, beta: 1, c: dk + b * K * C + h * hs, ldc: C)
        }
    }
}
