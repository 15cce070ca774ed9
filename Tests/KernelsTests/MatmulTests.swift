import Kernels
import TestSupport
import XCTest

final class MatmulTests: XCTestCase {
    func testGemmMatchesNaiveProductForEveryTranspose() {
        var random = SeededRandom(seed: 1)
        let (m, n, k) = (5, 7, 3)
        for transA in [false, true] {
            for transB in [false, true] {
                let a = random.tensor(transA ? [k, m] : [m, k]), b = random.tensor(transB ? [n, k] : [k, n])
                let c = random.tensor([m, n])
                let before = c.array
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2,
                     a: a.data, lda: transA ? m : k, b: b.data, ldb: transB ? k : n, beta: 0.5, c: c.data, ldc: n)
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Float = 0
                        for p in 0..<k {
                            sum += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j])
                        }
                        XCTAssertEqual(c[i * n + j], 2 * sum + 0.5 * before[i * n + j], accuracy: 1e-5)
                    }
                }
            }
        }
    }

    func testLinearBackwardMatchesFiniteDifferences() {
        var random = SeededRandom(seed: 2)
        let (rows, inF, outF) = (4, 6, 5)
        let inp = random.tensor([rows, inF]), weight = random.tensor([outF, inF]), bias = random.tensor([outF])
        let dout = random.tensor([rows, outF]), out = Tensor(shape: [rows, outF])
        let dinp = Tensor(shape: [rows, inF]), dweight = Tensor(shape: [outF, inF]), dbias = Tensor(shape: [outF])
        linearBackward(dinp: dinp.data, dweight: dweight.data, dbias: dbias.data, dout: dout.data,
                       inp: inp.data, weight: weight.elements, rows: rows, inFeatures: inF, outFeatures: outF)
        let loss = {
            linearForward(out: out.data, inp: inp.data, weight: weight.elements, bias: bias.data,
                          rows: rows, inFeatures: inF, outFeatures: outF)
            return weightedSum(out.data, dout)
        }
        checkGradient("linear input", input: inp, analytic: dinp, loss: loss)
        checkGradient("linear weight", input: weight, analytic: dweight, loss: loss)
        checkGradient("linear bias", input: bias, analytic: dbias, loss: loss)
    }

    func testLinearBackwardAccumulatesAndSkipsNilGradients() {
        var random = SeededRandom(seed: 3)
        let inp = random.tensor([2, 3]), weight = random.tensor([4, 3]), dout = random.tensor([2, 4])
        let dweight = Tensor(shape: [4, 3])
        for _ in 0..<2 {
            linearBackward(dinp: nil, dweight: dweight.data, dbias: nil, dout: dout.data,
                           inp: inp.data, weight: weight.elements, rows: 2, inFeatures: 3, outFeatures: 4)
        }
        let once = Tensor(shape: [4, 3])
        linearBackward(dinp: nil, dweight: once.data, dbias: nil, dout: dout.data,
                       inp: inp.data, weight: weight.elements, rows: 2, inFeatures: 3, outFeatures: 4)
        for i in 0..<once.count { XCTAssertEqual(dweight[i], 2 * once[i], accuracy: 1e-6) }
    }

    func testThroughputIsMeasured() {
        XCTAssertGreaterThan(MatrixEngine.measure(m: 64, n: 64, k: 64, minSeconds: 0.01), 0)
    }

    func testLinearForwardAddsBias() {
        var random = SeededRandom(seed: 4)
        let inp = random.tensor([3, 4]), weight = random.tensor([2, 4]), bias = random.tensor([2])
        let out = Tensor(shape: [3, 2])
        linearForward(out: out.data, inp: inp.data, weight: weight.elements, bias: bias.data, rows: 3, inFeatures: 4,
                      outFeatures: 2)
        for r in 0..<3 {
            for o in 0..<2 {
                let expected = (0..<4).reduce(bias[o]) { $0 + inp[r * 4 + $1] * weight[o * 4 + $1] }
                XCTAssertEqual(out[r * 2 + o], expected, accuracy: 1e-5)
            }
        }
    }

    /// Heads as column slices of (B, T, C), as attention reads them: every (sequence, head) product
    /// of one batched call equals the naive product of its slices, with B transposed (scores = q·kᵀ)
    /// and not (out = scores·v).
    func testBatchedProductOverHeadSlicesMatchesNaive() {
        var random = SeededRandom(seed: 5)
        let (B, H, T, hs) = (2, 3, 4, 5), C = H * hs
        let q = random.tensor([B, T, C]), k = random.tensor([B, T, C]), v = random.tensor([B, T, C])
        let scores = random.tensor([B, H, T, T]), before = scores.array
        let heads = (T * C, hs), scoreHeads = (H * T * T, T * T)
        gemm(transA: false, transB: true, m: T, n: T, k: hs, alpha: 0.5, a: q.data, lda: C, b: k.data, ldb: C,
             beta: 1, c: scores.data, ldc: T, batch: ProductBatch(counts: (B, H), a: heads, b: heads, c: scoreHeads))
        let out = Tensor(shape: [B, T, C])
        gemm(transA: false, transB: false, m: T, n: hs, k: T, a: scores.data, lda: T, b: v.data, ldb: C,
             beta: 0, c: out.data, ldc: C, batch: ProductBatch(counts: (B, H), a: scoreHeads, b: heads, c: heads))
        let slice = { (t: Tensor, b: Int, h: Int, row: Int, column: Int) in t[(b * T + row) * C + h * hs + column] }
        for b in 0..<B {
            for h in 0..<H {
                for i in 0..<T {
                    for j in 0..<T {
                        let sum = (0..<hs).reduce(Float(0)) { $0 + slice(q, b, h, i, $1) * slice(k, b, h, j, $1) }
                        let index = ((b * H + h) * T + i) * T + j
                        XCTAssertEqual(scores[index], 0.5 * sum + before[index], accuracy: 1e-5)
                    }
                    for j in 0..<hs {
                        let sum = (0..<T).reduce(Float(0)) { $0 + scores[((b * H + h) * T + i) * T + $1] * slice(v, b, h, $1, j) }
                        XCTAssertEqual(slice(out, b, h, i, j), sum, accuracy: 1e-4)
                    }
                }
            }
        }
    }
}
