/// Linear layer forward, as PyTorch stores it: out = inp · weightᵀ + bias.
/// - Parameters: out (rows, outFeatures), inp (rows, inFeatures),
///   weight (outFeatures, inFeatures), bias (outFeatures) or nil.
public func linearForward(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
    weight: MatrixElements, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    linearForward(out: out, inp: .float32(inp), weight: weight, bias: bias, rows: rows, inFeatures: inFeatures,
                  outFeatures: outFeatures)
}

/// `linearForward` over an input that may be bfloat16 already.
public func linearForward(
    out: UnsafeMutablePointer<Float>, inp: MatrixElements,
    weight: MatrixElements, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures, a: inp, lda: inFeatures,
         b: weight, ldb: inFeatures, beta: 0, c: out, ldc: outFeatures, bias: bias)
}

/// Linear layer backward; accumulates into whichever gradients are given
/// (nil for a frozen weight or an input that needs no gradient, so no work is done for it).
/// - Parameters: dout (rows, outFeatures), inp (rows, inFeatures), weight (outFeatures, inFeatures),
///   dinp (rows, inFeatures), dweight (outFeatures, inFeatures), dbias (outFeatures).
public func linearBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
    dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: MatrixElements,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    linearBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: .float32(inp), weight: weight,
                   rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
}

/// `linearBackward` over an input that may be bfloat16 already.
public func linearBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
    dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: MatrixElements, weight: MatrixElements,
    rows: Int, inFeatures: Int, outFeatures: Int
) {
    MatrixEngine.sharingRounding(of: dout, count: rows * outFeatures) {
        if let dinp {
            // (rows, out) · (out, in)
            gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
                 a: .float32(dout), lda: outFeatures, b: weight, ldb: inFeatures, beta: 1, c: dinp, ldc: inFeatures)
        }
        if let dweight {
            // (out, rows) · (rows, in)
            gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
                 a: .float32(dout), lda: outFeatures, b: inp, ldb: inFeatures, beta: 1, c: dweight, ldc: inFeatures)
        }
    }
    if let dbias {
        // Split over output features, so no two threads write one element.
        parallelFor(outFeatures, minimumChunk: 16) { range in
            for r in 0..<rows {
                let row = dout + r * outFeatures
                for o in range { dbias[o] += row[o] }
            }
        }
    }
}
