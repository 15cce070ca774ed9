import COpenBLAS

/// Row-major general matrix product through `cblas_sgemm`:
/// C (m, n) = alpha · op(A) · op(B) + beta · C, where op(A) is (m, k) and op(B) is (k, n).
/// Leading dimensions are row strides, so a head's slice of a (B, T, C) tensor
/// is addressed in place with `ld = C`.
@inline(__always)
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Linear layer forward, as PyTorch stores it: out = inp · weightᵀ + bias.
/// - Parameters: out (rows, outFeatures), inp (rows, inFeatures),
///   weight (outFeatures, inFeatures), bias (outFeatures) or nil.
public func linearForward(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    if let bias {
        for r in 0..<rows { (out + r * outFeatures).update(from: bias, count: outFeatures) }
    }
    gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
         a: inp, lda: inFeatures, b: weight, ldb: inFeatures,
         beta: bias == nil ? 0 : 1, c: out, ldc: outFeatures)
}

/// Linear layer backward; accumulates into whichever gradients are given
/// (nil for a frozen weight or an input that needs no gradient, so no work is done for it).
/// - Parameters: dout (rows, outFeatures), inp (rows, inFeatures), weight (outFeatures, inFeatures),
///   dinp (rows, inFeatures), dweight (outFeatures, inFeatures), dbias (outFeatures).
public func linearBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
    dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    if let dinp {
        // (rows, out) · (out, in)
        gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
             a: dout, lda: outFeatures, b: weight, ldb: inFeatures, beta: 1, c: dinp, ldc: inFeatures)
    }
    if let dweight {
        // (out, rows) · (rows, in)
        gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
             a: dout, lda: outFeatures, b: inp, ldb: inFeatures, beta: 1, c: dweight, ldc: inFeatures)
    }
    if let dbias {
        for r in 0..<rows {
            let row = dout + r * outFeatures
            for o in 0..<outFeatures { dbias[o] += row[o] }
        }
    }
}

/// Measures `cblas_sgemm` throughput on an (m, k) · (k, n) product, in GFLOP/s:
/// the machine's matrix peak right now, to compare a model's achieved rate with.
public func measureSgemmGFLOPS(m: Int, n: Int, k: Int, minSeconds: Double = 0.5) -> Double {
    let a = Tensor(shape: [m, k]), b = Tensor(shape: [k, n]), c = Tensor(shape: [m, n])
    for i in 0..<a.count { a[i] = Float(i % 7) * 0.01 }
    for i in 0..<b.count { b[i] = Float(i % 5) * 0.01 }
    let run = {
        gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.data, lda: k,
             b: b.data, ldb: n, beta: 0, c: c.data, ldc: n)
    }
    run()  // warm-up: thread start and page faults
    let clock = ContinuousClock()
    var repetitions = 0
    let start = clock.now
    var elapsed = 0.0
    repeat {
        run()
        repetitions += 1
        elapsed = (clock.now - start).seconds
    } while elapsed < minSeconds
    return 2.0 * Double(m) * Double(n) * Double(k) * Double(repetitions) / elapsed / 1e9
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
