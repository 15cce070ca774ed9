import Kernels
import TestSupport
import XCTest

final class NormalizationTests: XCTestCase {
    func testLayerNormForwardNormalizesEachRow() {
        var random = SeededRandom(seed: 4)
        let (rows, channels) = (3, 8)
        let inp = random.tensor([rows, channels], -3...3), out = Tensor(shape: [rows, channels])
        let ones = Tensor(shape: [channels], values: .init(repeating: 1, count: channels))
        let zeros = Tensor(shape: [channels])
        let mean = Tensor(shape: [rows]), rstd = Tensor(shape: [rows])
        layerNormForward(out: out.data, mean: mean.data, rstd: rstd.data, inp: inp.data, weight: ones.data,
                         bias: zeros.data, rows: rows, channels: channels, eps: 1e-12)
        for r in 0..<rows {
            let row = Array(out.array[(r * channels)..<((r + 1) * channels)])
            let m = row.reduce(0, +) / Float(channels)
            let variance = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Float(channels)
            XCTAssertEqual(m, 0, accuracy: 1e-5)
            XCTAssertEqual(variance, 1, accuracy: 1e-4)
        }
    }

    func testLayerNormBackwardMatchesFiniteDifferences() {
        var random = SeededRandom(seed: 5)
        let (rows, channels) = (3, 6)
        let inp = random.tensor([rows, channels]), weight = random.tensor([channels]), bias = random.tensor([channels])
        let dout = random.tensor([rows, channels]), out = Tensor(shape: [rows, channels])
        let mean = Tensor(shape: [rows]), rstd = Tensor(shape: [rows])
        let forward = {
            layerNormForward(out: out.data, mean: mean.data, rstd: rstd.data, inp: inp.data, weight: weight.data,
                             bias: bias.data, rows: rows, channels: channels, eps: 1e-5)
        }
        forward()
        let dinp = Tensor(shape: [rows, channels]), dweight = Tensor(shape: [channels]), dbias = Tensor(shape: [channels])
        layerNormBackward(dinp: dinp.data, dweight: dweight.data, dbias: dbias.data, dout: dout.data, inp: inp.data,
                          weight: weight.data, mean: mean.data, rstd: rstd.data, rows: rows, channels: channels)
        let loss = { forward(); return weightedSum(out.data, dout) }
        checkGradient("layernorm input", input: inp, analytic: dinp, epsilon: 1e-3, loss: loss)
        checkGradient("layernorm weight", input: weight, analytic: dweight, loss: loss)
        checkGradient("layernorm bias", input: bias, analytic: dbias, loss: loss)
    }

    func testMaskedSoftmaxGivesZeroToMaskedColumnsAndMatchesFiniteDifferences() {
        var random = SeededRandom(seed: 6)
        let (rows, columns) = (3, 5)
        let mask = Tensor(shape: [columns], values: [1, 1, 0, 1, 0])
        let inp = random.tensor([rows, columns], -2...2), out = Tensor(shape: [rows, columns])
        let forward = {
            out.copy(from: inp)
            maskedSoftmaxForward(out.data, mask: mask.data, rows: rows, columns: columns)
        }
        forward()
        for r in 0..<rows {
            XCTAssertEqual(out[r * columns + 2], 0)
            XCTAssertEqual(out[r * columns + 4], 0)
            XCTAssertEqual((0..<columns).map { out[r * columns + $0] }.reduce(0, +), 1, accuracy: 1e-6)
        }
        let dout = random.tensor([rows, columns]), dinp = Tensor(shape: [rows, columns])
        dinp.copy(from: dout)
        softmaxBackward(dinp.data, probs: out.data, rows: rows, columns: columns)
        checkGradient("softmax", input: inp, analytic: dinp, epsilon: 1e-3) { forward(); return weightedSum(out.data, dout) }
    }

    func testFullyMaskedSoftmaxRowIsZeroNotNaN() {
        let x = Tensor(shape: [1, 3], values: [1, 2, 3]), mask = Tensor(shape: [3])
        maskedSoftmaxForward(x.data, mask: mask.data, rows: 1, columns: 3)
        XCTAssertEqual(x.array, [0, 0, 0])
    }
}
