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
                       inp: inp.data, weight: weight.data, rows: rows, inFeatures: inF, outFeatures: outF)
        let loss = {
            linearForward(out: out.data, inp: inp.data, weight: weight.data, bias: bias.data,
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
                           inp: inp.data, weight: weight.data, rows: 2, inFeatures: 3, outFeatures: 4)
        }
        let once = Tensor(shape: [4, 3])
        linearBackward(dinp: nil, dweight: once.data, dbias: nil, dout: dout.data,
                       inp: inp.data, weight: weight.data, rows: 2, inFeatures: 3, outFeatures: 4)
        for i in 0..<once.count { XCTAssertEqual(dweight[i], 2 * once[i], accuracy: 1e-6) }
    }

    func testSgemmThroughputIsMeasured() {
        XCTAssertGreaterThan(measureSgemmGFLOPS(m: 64, n: 64, k: 64, minSeconds: 0.01), 0)
    }
}
