import Model

/// P-tuning v2: deep prompts of `length` vectors at every layer's keys and values, trained
/// directly, with dropout on them in training. PEFT's PREFIX_TUNING without projection.
public struct PTuningV2: TuningMethod {
    public static let name = "ptv2"
    public static let summary = "P-tuning v2: deep prompts at every layer, trained directly"
    // Prefix tuning's saved adapter holds the projected prompt, so it reads back as P-tuning v2.
    public static let peftTypes = ["PREFIX_TUNING"]
    // P-tuning v2's recipes use 5e-3 to 3e-2 for prompts; on sentiment, 2e-2 reached full
    // fine-tuning's accuracy where 1e-2 lagged far behind.
    public static let defaultLearningRate: Float = 2e-2

    public var length: Int
    public var dropout: Float
    /// First position id of the real tokens (nil: P, as PEFT and transformers do).
    public var positionOffset: Int?

    public init(length: Int, dropout: Float, positionOffset: Int? = nil) {
        self.length = length
        self.dropout = dropout
        self.positionOffset = positionOffset
    }

    public init(settings: JSONFields) throws {
        self.init(length: try settings.int("prompt_length"), dropout: try settings.float("prompt_dropout"),
                  positionOffset: settings.json["position_offset"] as? Int)
    }

    public var settings: [String: Any] {
        var object: [String: Any] = ["prompt_length": length, "prompt_dropout": dropout]
        if let positionOffset { object["position_offset"] = positionOffset }
        return object
    }

    public func validate(config: BertConfig) throws {
        try DeepPrompt.validate(length: length, offset: positionOffset, config: config)
        try SettingCheck.rate(dropout, "--prompt-dropout")
    }

    public var positionsBeforeTokens: Int { positionOffset ?? length }

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [PromptAdapter.initialized(ContinuousPrompt(placement: .keyValues, reparameterization: .none(dropout: dropout),
                                                    length: length, config: weights.config,
                                                    positionOffset: positionOffset), seed: seed)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        var content = try PromptAdapter.content(of: model, peftType: "PREFIX_TUNING", fields: [
            "prefix_projection": false, "encoder_hidden_size": model.weights.config.hiddenSize,
        ].merging(DeepPrompt.fields(length: length, offset: positionOffset)) { $1 })
        content.extras["prompt_dropout"] = dropout
        return content
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        let offset = try DeepPrompt.offset(peft, config: weights.config)
        let prompt = try PromptAdapter.read(peft, placement: .keyValues, config: weights.config, positionOffset: offset)
        return PeftAdapterLoaded(method: PTuningV2(length: prompt.length, dropout: 0, positionOffset: offset),
                                 components: [prompt], classifierPrefix: "base_model.")
    }
}

extension MethodSpec {
    public static func ptv2(length: Int, dropout: Float, positionOffset: Int? = nil) -> MethodSpec {
        MethodSpec(PTuningV2(length: length, dropout: dropout, positionOffset: positionOffset))
    }
}
