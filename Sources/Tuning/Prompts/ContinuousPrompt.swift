import Kernels
import Model

/// Where a prompt enters the encoder.
public enum PromptPlacement: String, Sendable {
    /// Key and value vectors prepended at every layer (prefix tuning, P-tuning v2).
    case keyValues
    /// Virtual tokens before the input tokens (P-tuning v1).
    case input
}

/// How the trained parameters become the prompt.
public enum PromptReparameterization: Equatable, Sendable {
    /// The prompt is trained directly (P-tuning v2), with optional dropout on it in training.
    case none(dropout: Float)
    /// Prefix tuning's MLP: embedding → Linear → tanh → Linear (PEFT's `transform.0`, `transform.2`).
    case prefixMLP(hidden: Int)
    /// P-tuning v1's LSTM encoder: embedding → bidirectional LSTM → Linear → ReLU → Linear.
    case lstm(hidden: Int, layers: Int)
    /// P-tuning v1's MLP encoder: embedding → Linear → ReLU → Linear → ReLU → Linear.
    case mlp(hidden: Int)
}

/// A continuous prompt: P trainable vectors, possibly produced through an encoder,
/// placed at the input or at every layer's keys and values.
public final class ContinuousPrompt: TuningComponent {
    public let placement: PromptPlacement
    public let reparameterization: PromptReparameterization
    public let length: Int
    /// The trained embedding: (P, width) for `.none`, (P, C) as the encoder's input otherwise.
    public let embedding: Parameter
    /// What the encoder consumes: (P, layers·2·C) for key/value prompts, (P, C) for input prompts.
    /// Holds the last pass's prompt; its gradient receives the encoder's.
    public let output: Parameter
    public let positionOffset: Int?
    public let parameters: [Parameter]
    private let mlp: MLP?
    private let lstm: BidirectionalLSTM?
    private var dropout: Dropout?
    /// The LSTM's output of the last pass (the MLP head's input) and its gradient.
    private var lstmOutput: UnsafePointer<Float>?
    private var lstmOutputGradient = Tensor(shape: [0])

    /// - Parameters:
    ///   - positionOffset: first position id of the real tokens with key/value prompts (default P, as PEFT).
    public init(placement: PromptPlacement, reparameterization: PromptReparameterization, length: Int,
                config: BertConfig, positionOffset: Int? = nil) {
        self.placement = placement
        self.reparameterization = reparameterization
        self.length = length
        self.positionOffset = positionOffset
        let C = config.hiddenSize
        let width = placement == .keyValues ? config.layers * 2 * C : C
        var registry = Parameters()
        if case .none = reparameterization {
            embedding = registry.make("prompt_encoder.embedding.weight", [length, width])
        } else {
            embedding = registry.make("prompt_encoder.embedding.weight", [length, C])
        }
        switch reparameterization {
        case .none:
            mlp = nil; lstm = nil
        case .prefixMLP(let hidden):
            mlp = MLP("prompt_encoder.transform", sizes: [C, hidden, width], activations: [.tanh, .none],
                      indices: [0, 2], in: &registry)
            lstm = nil
        case .lstm(let hidden, let layers):
            lstm = BidirectionalLSTM("prompt_encoder.lstm_head", inputSize: C, hiddenSize: hidden, layers: layers,
                                     in: &registry)
            mlp = MLP("prompt_encoder.mlp_head", sizes: [2 * hidden, 2 * hidden, width], activations: [.relu, .none],
                      indices: [0, 2], in: &registry)
        case .mlp(let hidden):
            mlp = MLP("prompt_encoder.mlp_head", sizes: [C, hidden, hidden, width], activations: [.relu, .relu, .none],
                      indices: [0, 2, 4], in: &registry)
            lstm = nil
        }
        parameters = registry.all
        output = Parameter("prompt", Tensor(shape: [length, width]))
        output.setTrainable(true)
    }

    /// Draws initial values as PyTorch does: the embedding from N(0, 1) (`nn.Embedding`),
    /// linear layers from U(±1/√in), LSTM weights from U(±1/√hidden).
    public func initialize(using random: inout SplitMix) {
        for i in 0..<embedding.value.count { embedding.value[i] = random.normal() }
        lstm?.initialize(using: &random)
        mlp?.initialize(using: &random)
    }

    public var positionsBeforeTokens: Int { placement == .keyValues ? positionOffset ?? length : length }

    public func addPrompts(to prompts: inout Prompts, dropoutSeed: UInt64?) {
        computeOutput(dropoutSeed: dropoutSeed)
        switch placement {
        case .keyValues:
            prompts.keyValues = output
            prompts.positionOffset = positionOffset ?? length
        case .input:
            prompts.inputEmbeddings = output
        }
        output.gradient?.zero()
    }

    /// Runs the reparameterization (or dropout) so `output` holds this pass's prompt.
    public func computeOutput(dropoutSeed: UInt64? = nil) {
        let P = length
        dropout = nil
        switch reparameterization {
        case .none(let rate):
            if let seed = dropoutSeed, rate > 0 {
                dropout = Dropout(rate: rate, seed: seed).derived(0x5052_4F4D)
                dropoutForward(out: output.value.data, inp: embedding.value.data, count: output.value.count, dropout: dropout!)
            } else {
                output.value.copy(from: embedding.value)
            }
        case .prefixMLP, .mlp:
            output.value.data.update(from: mlp!.forward(embedding.value.data, rows: P), count: output.value.count)
        case .lstm:
            let hidden = lstm!.forward(embedding.value.data, steps: P)
            lstmOutput = hidden
            output.value.data.update(from: mlp!.forward(hidden, rows: P), count: output.value.count)
        }
    }

    public func backward() {
        guard let dOutput = output.gradient else { return }
        let P = length
        switch reparameterization {
        case .none:
            guard let dEmbedding = embedding.gradient else { return }
            if let dropout {
                dropoutBackward(dinp: dEmbedding.data, dout: dOutput.data, count: dOutput.count, dropout: dropout)
            } else {
                accumulate(into: dEmbedding.data, dOutput.data, count: dOutput.count)
            }
        case .prefixMLP, .mlp:
            mlp!.backward(dinp: embedding.gradient?.data, dout: dOutput.data, inp: embedding.value.data, rows: P)
        case .lstm(let hidden, _):
            if lstmOutputGradient.count != P * 2 * hidden { lstmOutputGradient = Tensor(shape: [P, 2 * hidden]) }
            lstmOutputGradient.zero()
            mlp!.backward(dinp: lstmOutputGradient.data, dout: dOutput.data, inp: lstmOutput!, rows: P)
            lstm!.backward(dinp: embedding.gradient?.data, dout: lstmOutputGradient.data, inp: embedding.value.data, steps: P)
        }
    }
}
