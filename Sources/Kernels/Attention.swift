/// Sizes of one multi-head attention call.
///
/// Queries come from the T real tokens; keys and values cover S ≥ T positions,
/// so prompt positions prepended to the keys and values (prefix tuning,
/// P-tuning v2) need no special case here.
public struct AttentionShape: Sendable {
    public let batch: Int, queries: Int, keys: Int, channels: Int, heads: Int
    public var headSize: Int { channels / heads }

    public init(batch: Int, queries: Int, keys: Int, channels: Int, heads: Int) {
        precondition(channels % heads == 0, "\(channels) channels do not split into \(heads) heads")
        self.batch = batch
        self.queries = queries
        self.keys = keys
        self.channels = channels
        self.heads = heads
    }

    /// Elements of one probability tensor (B, H, T, S).
    public var probabilityCount: Int { batch * heads * queries * keys }

    /// Floats of scratch space the forward pass needs with dropout: T · S per thread.
    public var forwardScratchCount: Int { Parallelism.threads * queries * keys }

    /// Floats of scratch space the backward pass needs: 2 · T · S per thread.
    public var scratchCount: Int { Self.scratchCount(queries: queries, keys: keys) }

    /// Floats of scratch space the backward pass needs for T queries and S keys, any batch.
    public static func scratchCount(queries: Int, keys: Int) -> Int { Parallelism.threads * 2 * queries * keys }
}

/// Scaled dot-product attention, every head at once; heads are column slices of (B, ·, C).
/// - Parameters:
///   - out: (B, T, C) attention output, heads concatenated.
///   - probs: (B, H, T, S) softmax probabilities (before dropout), saved for the backward pass,
///     which redraws the dropout masks rather than keeping the dropped copy.
///   - scratch: `shape.forwardScratchCount` floats for the dropped probabilities; needed only with dropout.
///   - q: (B, T, C); k, v: (B, S, C); keyMask: (B, S), 1 = attend, 0 = padding.
public func attentionForward(
    out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    keyMask: UnsafePointer<Float>, shape: AttentionShape, dropout: SequenceDropout?,
    scratch: UnsafeMutablePointer<Float>?
) {
    let (T, S, C, hs) = (shape.queries, shape.keys, shape.channels, shape.headSize)
    let scale = 1 / Float(hs).squareRoot()
    WorkCounter.add(shape.batch * shape.heads * T, S, 2 * hs)   // scores and the weighted sum
    // Heads are independent: split them over the threads.
    parallelChunks(shape.batch * shape.heads) { chunk, heads in
        for head in heads {
            let (b, h) = (head / shape.heads, head % shape.heads)
            let p = probs + head * T * S
            let qh = q + b * T * C + h * hs, kh = k + b * S * C + h * hs, vh = v + b * S * C + h * hs
            // (T, hs) · (S, hs)ᵀ → (T, S)
            gemm(transA: false, transB: true, m: T, n: S, k: hs, alpha: scale,
                 a: qh, lda: C, b: kh, ldb: C, beta: 0, c: p, ldc: S)
            maskedSoftmaxForward(p, mask: keyMask + b * S, rows: T, columns: S)
            var weights = UnsafePointer(p)
            if let dropout, let scratch {
                let d = scratch + chunk * T * S
                dropoutForward(out: d, inp: p, count: T * S, dropout: dropout.sequence(b).derived(UInt64(h)), parallel: false)
                weights = UnsafePointer(d)
            }
            // (T, S) · (S, hs) → (T, hs), written into head h's columns
            gemm(transA: false, transB: false, m: T, n: hs, k: S,
                 a: weights, lda: S, b: vh, ldb: C, beta: 0, c: out + b * T * C + h * hs, ldc: C)
        }
    }
}

/// Attention backward; accumulates into dq (B, T, C), dk and dv (B, S, C).
/// `scratch` holds `shape.scratchCount` floats; `probs` are the forward's.
public func attentionBackward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    dout: UnsafePointer<Float>, probs: UnsafePointer<Float>,
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
    scratch: UnsafeMutablePointer<Float>, shape: AttentionShape, dropout: SequenceDropout?
) {
    let (T, S, C, hs) = (shape.queries, shape.keys, shape.channels, shape.headSize)
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
            let qh = q + b * T * C + h * hs, kh = k + b * S * C + h * hs, vh = v + b * S * C + h * hs
            let doh = dout + b * T * C + h * hs
            // dscores (T, S) first holds the gradient of the (dropped) weights: dout_h (T, hs) · v_hᵀ
            gemm(transA: false, transB: true, m: T, n: S, k: hs,
                 a: doh, lda: C, b: vh, ldb: C, beta: 0, c: dscores, ldc: S)
            // dv_h (S, hs) += weightsᵀ · dout_h
            gemm(transA: true, transB: false, m: S, n: hs, k: T,
                 a: weights, lda: S, b: doh, ldb: C, beta: 1, c: dv + b * S * C + h * hs, ldc: C)
            // Through the dropout (when on) and the softmax, in place: the unscaled scores' gradient.
            softmaxBackward(dscores, probs: p, rows: T, columns: S, dropped: headDropout == nil ? nil : UnsafePointer(dropped),
                            scale: headDropout?.scale ?? 1)
            // dq_h (T, hs) += scale · dscores · k_h ; dk_h (S, hs) += scale · dscoresᵀ · q_h
            gemm(transA: false, transB: false, m: T, n: hs, k: S, alpha: scale,
                 a: dscores, lda: S, b: kh, ldb: C, beta: 1, c: dq + b * T * C + h * hs, ldc: C)
            gemm(transA: true, transB: false, m: S, n: hs, k: T, alpha: scale,
                 a: dscores, lda: S, b: qh, ldb: C, beta: 1, c: dk + b * S * C + h * hs, ldc: C)
        }
    }
}
