import Foundation
import Kernels
import TestSupport
import XCTest

final class ElementwiseTests: XCTestCase {
    typealias Unary = (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void
    typealias UnaryBackward = (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void

    /// Checks a unary op's backward, which reads the forward's input and output.
    private func checkUnary(_ label: String, range: ClosedRange<Float> = -3...3, forward: Unary, backward: UnaryBackward,
                            line: UInt = #line) {
        var random = SeededRandom(seed: 7)
        let count = 40
        let inp = random.tensor([count], range), out = Tensor(shape: [count]), dout = random.tensor([count])
        forward(out.data, inp.data, count)
        let dinp = Tensor(shape: [count])
        backward(dinp.data, dout.data, inp.data, out.data, count)
        checkGradient(label, input: inp, analytic: dinp, epsilon: 1e-3, line: line) {
            forward(out.data, inp.data, count)
            return weightedSum(out.data, dout)
        }
    }

    func testGeluIsExactErfGeluAndItsBackwardMatches() {
        let x = Tensor(shape: [3], values: [-1, 0, 2]), y = Tensor(shape: [3])
        geluForward(out: y.data, inp: x.data, count: 3)
        // x · Φ(x): Φ(-1) = 0.158655, Φ(2) = 0.977250
        XCTAssertEqual(y[0], -0.158655, accuracy: 1e-5)
        XCTAssertEqual(y[1], 0)
        XCTAssertEqual(y[2], 1.954500, accuracy: 1e-5)
        checkUnary("gelu", forward: { geluForward(out: $0, inp: $1, count: $2) },
                   backward: { $0.update(from: $1, count: $4); geluBackward($0, inp: $2, count: $4) })
    }

    func testGeluMatchesTheErfDefinitionAcrossItsRange() {
        let count = 2001
        let x = Tensor(shape: [count]), y = Tensor(shape: [count])
        for i in 0..<count { x[i] = Float(i - 1000) / 100 }   // −10 … 10
        geluForward(out: y.data, inp: x.data, count: count)
        for i in 0..<count {
            let exact = 0.5 * Double(x[i]) * (1 + Foundation.erf(Double(x[i]) / 2.0.squareRoot()))
            XCTAssertEqual(Double(y[i]), exact, accuracy: 1e-6 * max(1, abs(exact)), "gelu(\(x[i]))")
        }
    }

    func testTanhBackwardMatches() {
        checkUnary("tanh", forward: { tanhForward(out: $0, inp: $1, count: $2) },
                   backward: { tanhBackward(dinp: $0, dout: $1, out: $3, count: $4) })
    }

    func testReluBackwardMatches() {
        // Inputs kept away from the kink at 0, where the finite difference is undefined.
        var random = SeededRandom(seed: 8)
        let inp = random.tensor([30], 0.1...2)
        for i in stride(from: 0, to: 30, by: 2) { inp[i] = -inp[i] }
        let out = Tensor(shape: [30]), dout = random.tensor([30]), dinp = Tensor(shape: [30])
        reluBackward(dinp: dinp.data, dout: dout.data, inp: inp.data, count: 30)
        checkGradient("relu", input: inp, analytic: dinp, epsilon: 1e-3) {
            reluForward(out: out.data, inp: inp.data, count: 30)
            return weightedSum(out.data, dout)
        }
    }

    func testBiasAddBackwardMatches() {
        var random = SeededRandom(seed: 9)
        let x = random.tensor([4, 3]), bias = random.tensor([3]), dout = random.tensor([4, 3]), dbias = Tensor(shape: [3])
        let out = Tensor(shape: [4, 3])
        biasAddBackward(dbias: dbias.data, dout: dout.data, rows: 4, channels: 3)
        checkGradient("bias add", input: bias, analytic: dbias) {
            out.copy(from: x)
            biasAddForward(out.data, bias: bias.data, rows: 4, channels: 3)
            return weightedSum(out.data, dout)
        }
    }

    func testEmbeddingBackwardScatterAddsRepeatedIds() {
        var random = SeededRandom(seed: 10)
        let table = random.tensor([5, 4]), ids: [Int32] = [3, 1, 3, 0]
        let out = Tensor(shape: [4, 4]), dout = random.tensor([4, 4]), dtable = Tensor(shape: [5, 4])
        ids.withUnsafeBufferPointer { ids in
            embeddingBackward(dtable: dtable.data, dout: dout.data, ids: ids.baseAddress!, count: 4, channels: 4)
            checkGradient("embedding", input: table, analytic: dtable) {
                embeddingForward(out: out.data, ids: ids.baseAddress!, table: table.elements, count: 4, channels: 4)
                return weightedSum(out.data, dout)
            }
        }
        XCTAssertEqual(Array(dtable.array[8..<12]), [0, 0, 0, 0], "row 2 was never read")
    }

    func testDropoutIsSeededKeepsAboutOneMinusRateAndBackwardMatches() {
        let count = 20_000
        let inp = Tensor(shape: [count], values: .init(repeating: 1, count: count)), out = Tensor(shape: [count])
        let dropout = Dropout(rate: 0.1, seed: 42)
        dropoutForward(out: out.data, inp: inp.data, count: count, dropout: dropout)
        let kept = out.array.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / Double(count), 0.9, accuracy: 0.01)
        XCTAssertEqual(kept.first!, 1 / 0.9, accuracy: 1e-6)
        let again = Tensor(shape: [count])
        dropoutForward(out: again.data, inp: inp.data, count: count, dropout: dropout)
        XCTAssertEqual(out.array, again.array, "same seed, same mask")
        dropoutForward(out: again.data, inp: inp.data, count: count, dropout: dropout.derived(1))
        XCTAssertNotEqual(out.array, again.array, "another site, another mask")
        dropoutForward(out: again.data, inp: inp.data, count: count, dropout: dropout, parallel: false)
        XCTAssertEqual(out.array, again.array, "the mask does not depend on how the range is split")
        let odd = Tensor(shape: [count - 5])
        dropoutForward(out: odd.data, inp: inp.data, count: count - 5, dropout: dropout)
        XCTAssertEqual(odd.array, Array(out.array.prefix(count - 5)), "nor on where it ends")

        var random = SeededRandom(seed: 11)
        let x = random.tensor([50]), y = Tensor(shape: [50]), dout = random.tensor([50]), dinp = Tensor(shape: [50])
        let heavy = Dropout(rate: 0.5, seed: 7)
        dropoutBackward(dinp: dinp.data, dout: dout.data, count: 50, dropout: heavy)
        checkGradient("dropout", input: x, analytic: dinp) {
            dropoutForward(out: y.data, inp: x.data, count: 50, dropout: heavy)
            return weightedSum(y.data, dout)
        }
    }

    func testCrossEntropyMatchesHandValuesSkipsIgnoredRowsAndBackwardMatches() {
        let logits = Tensor(shape: [3, 3], values: [1, 2, 3, 0, 0, 0, 5, -1, 2])
        let targets: [Int32] = [2, -100, 0]
        targets.withUnsafeBufferPointer { t in
            let (loss, count) = crossEntropyForward(logits: logits.data, targets: t.baseAddress!, rows: 3, classes: 3)
            XCTAssertEqual(count, 2)
            let first = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3
            let third = log(exp(5.0) + exp(-1.0) + exp(2.0)) - 5
            XCTAssertEqual(Double(loss), (first + third) / 2, accuracy: 1e-6)

            let dlogits = Tensor(shape: [3, 3])
            crossEntropyBackward(dlogits: dlogits.data, logits: logits.data, targets: t.baseAddress!, rows: 3,
                                 classes: 3, scale: 1 / Float(count))
            XCTAssertEqual(Array(dlogits.array[3..<6]), [0, 0, 0], "ignored row has no gradient")
            checkGradient("cross-entropy", input: logits, analytic: dlogits, epsilon: 1e-3) {
                Double(crossEntropyForward(logits: logits.data, targets: t.baseAddress!, rows: 3, classes: 3).loss)
            }
        }
    }

    func testSquaredNormOfMillionsOfTermsMatchesADoubleSum() {
        var random = SeededRandom(seed: 11)
        for count in [0, 7, 4096 * 3 + 5, 1_000_003] {
            let x = random.tensor([count], -2...2)
            let expected = (0..<count).reduce(0.0) { $0 + Double(x[$1]) * Double(x[$1]) }
            XCTAssertEqual(squaredNorm(x.data, count: count), expected, accuracy: 1e-6 * max(expected, 1), "\(count)")
        }
    }
}

final class FastMathTests: XCTestCase {
    func testFastExpIsWithinFourTenMillionthsRelative() {
        for i in -8700...8800 {
            let x = Float(i) / 100
            let exact = Foundation.exp(Double(x))
            XCTAssertEqual(Double(fastExp(x)), exact, accuracy: 4e-7 * exact, "exp(\(x))")
        }
        XCTAssertEqual(fastExp(-200), 0)
        XCTAssertEqual(fastExp(100), .infinity)
    }
}
