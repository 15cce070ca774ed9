import Model

/// P-tuning v1: `length` virtual input tokens produced by an LSTM or MLP prompt encoder, PEFT's
/// P_TUNING. PEFT saves the encoder's output, so a saved adapter reads back with no encoder.
public struct PTuningV1: TuningMethod {
    public static let name = "ptv1"
    public static let summary = "P-tuning v1: virtual input tokens from an LSTM or MLP prompt encoder"
    public static let peftTypes = ["P_TUNING"]
    public static let defaultLearningRate: Float = 1e-3

    public var length: Int
    public var encoder: PromptReparameterization

    public init(length: Int, encoder: PromptReparameterization) {
        self.length = length
        self.encoder = encoder
    }

    public init(settings: JSONFields) throws {
        let length = try settings.int("prompt_length")
        switch try settings.string("prompt_encoder") {
        case "lstm": self.init(length: length, encoder: .lstm(hidden: try settings.int("encoder_hidden"),
                                                              layers: try settings.int("encoder_layers")))
        case "mlp": self.init(length: length, encoder: .mlp(hidden: try settings.int("encoder_hidden")))
        case "none": self.init(length: length, encoder: .none(dropout: 0))
        case let other:
            throw InputError(settings.source, "field 'prompt_encoder' must be lstm, mlp or none, not '\(other)'")
        }
    }

    public var settings: [String: Any] {
        switch encoder {
        case let .lstm(hidden, layers):
            ["prompt_length": length, "prompt_encoder": "lstm", "encoder_hidden": hidden, "encoder_layers": layers]
        case let .mlp(hidden): ["prompt_length": length, "prompt_encoder": "mlp", "encoder_hidden": hidden]
        case .none, .prefixMLP: ["prompt_length": length, "prompt_encoder": "none"]
        }
    }

    public func validate(config: BertConfig) throws {
        try SettingCheck.promptLength(length, config: config)
        switch encoder {
        case let .lstm(hidden, layers):
            try SettingCheck.width(hidden, "--encoder-hidden")
            try SettingCheck.require((1...16).contains(layers), "--encoder-layers", "must be within 1...16, not \(layers)")
        case let .mlp(hidden): try SettingCheck.width(hidden, "--encoder-hidden")
        case .none, .prefixMLP: break
        }
    }

    /// The virtual tokens take positions 0..<P.
    public var positionsBeforeTokens: Int { length }

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [PromptAdapter.initialized(ContinuousPrompt(placement: .input, reparameterization: encoder, length: length,
                                                    config: weights.config), seed: seed)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        let (type, hidden, layers): (String, Int, Int) = switch encoder {
        case let .lstm(hidden, layers): ("LSTM", hidden, layers)
        case let .mlp(hidden): ("MLP", hidden, 2)
        case .none, .prefixMLP: ("MLP", model.weights.config.hiddenSize, 2)
        }
        return try PromptAdapter.content(of: model, peftType: "P_TUNING", fields: [
            "encoder_reparameterization_type": type, "encoder_hidden_size": hidden, "encoder_num_layers": layers,
            "encoder_dropout": 0.0,
        ])
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        let prompt = try PromptAdapter.read(peft, placement: .input, config: weights.config)
        return PeftAdapterLoaded(method: PTuningV1(length: prompt.length, encoder: .none(dropout: 0)),
                                 components: [prompt], classifierPrefix: "base_model.")
    }
}

extension MethodSpec {
    public static func ptv1(length: Int, encoder: PromptReparameterization) -> MethodSpec {
        MethodSpec(PTuningV1(length: length, encoder: encoder))
    }
}
