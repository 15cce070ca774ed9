import Kernels
import Model

/// The nonlinearity after one MLP layer.
public enum Activation: String, Sendable {
    case none, tanh, relu
}

/// A stack of linear layers with activations, run on a handful of rows (the prompt positions):
/// the reparameterization of prefix tuning and of P-tuning v1's MLP encoder and LSTM head.
final class MLP {
    let layers: [(linear: Linear, activation: Activation)]
    private var outputs: [Tensor] = []            // each layer's output, after its activation
    private var outputGradients: [Tensor] = []    // gradients of those outputs
    private var preActivationGradient: [Tensor] = []

    /// Layer i is `prefix.<indices[i]>`, as in PyTorch's `nn.Sequential` numbering.
    init(_ prefix: String, sizes: [Int], activations: [Activation], indices: [Int], in parameters: inout Parameters) {
        layers = (0..<activations.count).map { i in
            (Linear("\(prefix).\(indices[i])", inFeatures: sizes[i], outFeatures: sizes[i + 1], in: &parameters),
             activations[i])
        }
    }

    /// `nn.Linear`'s initialization: weight and bias from U(±1/√in).
    func initialize(using random: inout SplitMix) {
        for (linear, _) in layers {
            let bound = 1 / Float(linear.inFeatures).squareRoot()
            for tensor in [linear.weight.value, linear.bias.value] {
                for i in 0..<tensor.count { tensor[i] = Float.random(in: -bound...bound, using: &random) }
            }
        }
    }

    /// out (rows, last size) of inp (rows, first size); the result stays valid until the next call.
    func forward(_ inp: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float> {
        if outputs.first.map({ $0.shape[0] != rows }) ?? true {
            outputs = layers.map { Tensor(shape: [rows, $0.linear.outFeatures]) }
            outputGradients = layers.map { Tensor(shape: [rows, $0.linear.outFeatures]) }
            preActivationGradient = layers.map { Tensor(shape: [rows, $0.linear.outFeatures]) }
        }
        var x = inp
        for (index, (linear, activation)) in layers.enumerated() {
            let y = outputs[index].data
            linear.forward(out: y, inp: x, rows: rows)
            switch activation {
            case .none: break
            case .tanh: tanhForward(out: y, inp: y, count: outputs[index].count)
            case .relu: reluForward(out: y, inp: y, count: outputs[index].count)
            }
            x = UnsafePointer(y)
        }
        return x
    }

    /// Backward from dout (rows, last size); accumulates into dinp when given.
    func backward(dinp: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, rows: Int) {
        var upstream = dout
        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            let (linear, activation) = layers[index]
            let y = outputs[index], dPre = preActivationGradient[index]
            // Through the activation, from its output: tanh' = 1 − y², and y > 0 exactly where ReLU's input was.
            switch activation {
            case .none: dPre.data.update(from: upstream, count: dPre.count)
            case .tanh: dPre.zero(); tanhBackward(dinp: dPre.data, dout: upstream, out: y.data, count: dPre.count)
            case .relu: dPre.zero(); reluBackward(dinp: dPre.data, dout: upstream, inp: y.data, count: dPre.count)
            }
            guard index > 0 else {
                linear.backward(dinp: dinp, dout: dPre.data, inp: inp, rows: rows)
                return
            }
            outputGradients[index - 1].zero()
            linear.backward(dinp: outputGradients[index - 1].data, dout: dPre.data, inp: outputs[index - 1].data, rows: rows)
            upstream = UnsafePointer(outputGradients[index - 1].data)
        }
    }
}

/// A stacked bidirectional LSTM over one sequence, as PyTorch's `nn.LSTM(bidirectional=True,
/// batch_first=True)` on a batch of one, with PyTorch's parameter names.
final class BidirectionalLSTM {
    struct Direction {
        let weightIH, weightHH, biasIH, biasHH: Parameter
    }
    let hiddenSize: Int
    let layers: [(forward: Direction, reverse: Direction)]
    private var outputs: [Tensor] = [], gates: [[Tensor]] = [], cells: [[Tensor]] = [], gradients: [Tensor] = []
    private var scratch = Tensor(shape: [0])

    init(_ prefix: String, inputSize: Int, hiddenSize: Int, layers count: Int, in parameters: inout Parameters) {
        self.hiddenSize = hiddenSize
        layers = (0..<count).map { l in
            func direction(_ suffix: String) -> Direction {
                let inSize = l == 0 ? inputSize : 2 * hiddenSize
                return Direction(
                    weightIH: parameters.make("\(prefix).weight_ih_l\(l)\(suffix)", [4 * hiddenSize, inSize]),
                    weightHH: parameters.make("\(prefix).weight_hh_l\(l)\(suffix)", [4 * hiddenSize, hiddenSize]),
                    biasIH: parameters.make("\(prefix).bias_ih_l\(l)\(suffix)", [4 * hiddenSize]),
                    biasHH: parameters.make("\(prefix).bias_hh_l\(l)\(suffix)", [4 * hiddenSize]))
            }
            return (direction(""), direction("_reverse"))
        }
    }

    /// `nn.LSTM`'s initialization: every weight and bias from U(±1/√hidden).
    func initialize(using random: inout SplitMix) {
        let bound = 1 / Float(hiddenSize).squareRoot()
        for layer in layers {
            for direction in [layer.forward, layer.reverse] {
                for parameter in [direction.weightIH, direction.weightHH, direction.biasIH, direction.biasHH] {
                    for i in 0..<parameter.value.count {
                        parameter.value[i] = Float.random(in: -bound...bound, using: &random)
                    }
                }
            }
        }
    }

    /// (steps, 2·hidden) of inp (steps, input size): forward and reverse outputs concatenated.
    func forward(_ inp: UnsafePointer<Float>, steps: Int) -> UnsafePointer<Float> {
        let H = hiddenSize
        if outputs.first.map({ $0.shape[0] != steps }) ?? true {
            outputs = layers.map { _ in Tensor(shape: [steps, 2 * H]) }
            gradients = layers.map { _ in Tensor(shape: [steps, 2 * H]) }
            gates = layers.map { _ in [Tensor(shape: [steps * 4 * H]), Tensor(shape: [steps * 4 * H])] }
            cells = layers.map { _ in [Tensor(shape: [steps, H]), Tensor(shape: [steps, H])] }
            scratch = Tensor(shape: [steps * 4 * H + 2 * H])
        }
        var x = inp
        for (l, layer) in layers.enumerated() {
            for (d, direction) in [layer.forward, layer.reverse].enumerated() {
                lstmForward(output: outputs[l].data + d * H, outputStride: 2 * H, gates: gates[l][d].data,
                            cells: cells[l][d].data, input: x, weightIH: direction.weightIH.value.data,
                            weightHH: direction.weightHH.value.data, biasIH: direction.biasIH.value.data,
                            biasHH: direction.biasHH.value.data, shape: shape(l, steps), reverse: d == 1)
            }
            x = UnsafePointer(outputs[l].data)
        }
        return x
    }

    /// Backward from dout (steps, 2·hidden); accumulates into dinp when given and the trainable weights.
    func backward(dinp: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, steps: Int) {
        let H = hiddenSize
        var upstream = dout
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let input = l == 0 ? inp : UnsafePointer(outputs[l - 1].data)
            let dInput: UnsafeMutablePointer<Float>? = l == 0 ? dinp : gradients[l - 1].data
            if l > 0 { gradients[l - 1].zero() }
            for (d, direction) in [layers[l].forward, layers[l].reverse].enumerated() {
                guard let dIH = direction.weightIH.gradient, let dHH = direction.weightHH.gradient,
                      let dbIH = direction.biasIH.gradient, let dbHH = direction.biasHH.gradient
                else { preconditionFailure("LSTM weights must be trainable to run backward") }
                lstmBackward(dinput: dInput, dweightIH: dIH.data, dweightHH: dHH.data, dbiasIH: dbIH.data,
                             dbiasHH: dbHH.data, doutput: upstream + d * H, outputStride: 2 * H,
                             output: outputs[l].data + d * H, gates: gates[l][d].data, cells: cells[l][d].data,
                             input: input, weightIH: direction.weightIH.value.data,
                             weightHH: direction.weightHH.value.data, scratch: scratch.data,
                             shape: shape(l, steps), reverse: d == 1)
            }
            if l > 0 { upstream = UnsafePointer(gradients[l - 1].data) }
        }
    }

    private func shape(_ layer: Int, _ steps: Int) -> LSTMShape {
        LSTMShape(steps: steps, inputSize: layers[layer].forward.weightIH.shape[1], hiddenSize: hiddenSize)
    }
}
