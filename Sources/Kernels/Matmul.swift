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
/// Rows are split over the threads.
/// - Parameters: out (rows, outFeatures), inp (rows, inFeatures),
///   weight (outFeatures, inFeatures), bias (outFeatures) or nil.
public func linearForward(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    WorkCounter.add(rows, outFeatures, inFeatures)
    parallelFor(rows, minimumChunk: 16) { range in
        let out = out + range.lowerBound * outFeatures, inp = inp + range.lowerBound * inFeatures
        if let bias {
            for r in 0..<range.count { (out + r * outFeatures).update(from: bias, count: outFeatures) }
        }
        gemm(transA: false, transB: true, m: range.count, n: outFeatures, k: inFeatures,
             a: inp, lda: inFeatures, b: weight, ldb: inFeatures,
             beta: bias == nil ? 0 : 1, c: out, ldc: outFeatures)
    }
}

/// Linear layer backward; accumulates into whichever gradients are given
/// (nil for a frozen weight or an input that needs no gradient, so no work is done for it).
/// The input gradient is split over rows, the weight and bias gradients over output features,
/// so no two threads write the same element.
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
        WorkCounter.add(rows, inFeatures, outFeatures)
        parallelFor(rows, minimumChunk: 16) { range in
            gemm(transA: false, transB: false, m: range.count, n: inFeatures, k: outFeatures,
                 a: dout + range.lowerBound * outFeatures, lda: outFeatures, b: weight, ldb: inFeatures,
                 beta: 1, c: dinp + range.lowerBound * inFeatures, ldc: inFeatures)
        }
    }
    guard dweight != nil || dbias != nil else { return }
    if dweight != nil { WorkCounter.add(outFeatures, inFeatures, rows) }
    parallelFor(outFeatures, minimumChunk: 16) { range in
        if let dweight {
            // (out, rows) · (rows, in), for this thread's output features
            gemm(transA: true, transB: false, m: range.count, n: inFeatures, k: rows,
                 a: dout + range.lowerBound, lda: outFeatures, b: inp, ldb: inFeatures,
                 beta: 1, c: dweight + range.lowerBound * inFeatures, ldc: inFeatures)
        }
        if let dbias {
            for r in 0..<rows {
                let row = dout + r * outFeatures
                for o in range { dbias[o] += row[o] }
            }
        }
    }
}

/// Measures `cblas_sgemm` throughput on an (m, k) · (k, n) product, in GFLOP/s, with the
/// rows split over the threads as the kernels split them: the machine's matrix peak right
/// now, to compare a model's achieved rate with.
public func measureSgemmGFLOPS(m: Int, n: Int, k: Int, minSeconds: Double = 0.5) -> Double {
    let a = Tensor(shape: [m, k]), b = Tensor(shape: [k, n]), c = Tensor(shape: [m, n])
    for i in 0..<a.count { a[i] = Float(i % 7) * 0.01 }
    for i in 0..<b.count { b[i] = Float(i % 5) * 0.01 }
    let run = {
        parallelFor(m, minimumChunk: 16) { rows in
            gemm(transA: false, transB: false, m: rows.count, n: n, k: k, a: a.data + rows.lowerBound * k, lda: k,
                 b: b.data, ldb: n, beta: 0, c: c.data + rows.lowerBound * n, ldc: n)
        }
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
