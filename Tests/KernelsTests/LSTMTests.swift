import Kernels
import TestSupport
import XCTest

final class LSTMTests: XCTestCase {
    /// Both directions written interleaved into one (steps, 2H) output, as a bidirectional layer does.
    func testBothDirectionsBackwardMatchFiniteDifferences() {
        for reverse in [false, true] {
            var random = SeededRandom(seed: reverse ? 31 : 30)
            let shape = LSTMShape(steps: 4, inputSize: 3, hiddenSize: 2)
            let (H, stride) = (2, 4)
            let input = random.tensor([4, 3]), wIH = random.tensor([8, 3]), wHH = random.tensor([8, 2])
            let bIH = random.tensor([8]), bHH = random.tensor([8])
            let output = Tensor(shape: [4, stride]), gates = Tensor(shape: [shape.gateCount]), cells = Tensor(shape: [4, H])
            let column = reverse ? H : 0
            let forward = {
                lstmForward(output: output.data + column, outputStride: stride, gates: gates.data, cells: cells.data,
                            input: input.data, weightIH: wIH.data, weightHH: wHH.data, biasIH: bIH.data,
                            biasHH: bHH.data, shape: shape, reverse: reverse)
            }
            forward()
            let dout = random.tensor([4, stride])
            for t in 0..<4 { for u in 0..<H { dout[t * stride + (H - column) + u] = 0 } }   // only this direction's columns count
            let dInput = Tensor(shape: [4, 3]), dwIH = Tensor(shape: [8, 3]), dwHH = Tensor(shape: [8, 2])
            let dbIH = Tensor(shape: [8]), dbHH = Tensor(shape: [8]), scratch = Tensor(shape: [shape.gateCount + 2 * H])
            lstmBackward(dinput: dInput.data, dweightIH: dwIH.data, dweightHH: dwHH.data, dbiasIH: dbIH.data,
                         dbiasHH: dbHH.data, doutput: dout.data + column, outputStride: stride,
                         output: output.data + column, gates: gates.data, cells: cells.data, input: input.data,
                         weightIH: wIH.data, weightHH: wHH.data, scratch: scratch.data, shape: shape, reverse: reverse)
            let loss = { forward(); return weightedSum(output.data, dout) }
            let direction = reverse ? "reverse" : "forward"
            checkGradient("lstm \(direction) input", input: input, analytic: dInput, epsilon: 1e-3, loss: loss)
            checkGradient("lstm \(direction) weight_ih", input: wIH, analytic: dwIH, epsilon: 1e-3, loss: loss)
            checkGradient("lstm \(direction) weight_hh", input: wHH, analytic: dwHH, epsilon: 1e-3, loss: loss)
            checkGradient("lstm \(direction) bias_ih", input: bIH, analytic: dbIH, epsilon: 1e-3, loss: loss)
            checkGradient("lstm \(direction) bias_hh", input: bHH, analytic: dbHH, epsilon: 1e-3, loss: loss)
        }
    }
}
