import Model

/// Prefix tuning: deep prompts produced by an MLP of `hidden` units (embedding → Linear → tanh →
/// Linear), PEFT's PREFIX_TUNING with `prefix_projection`. PEFT saves the MLP's output, so the
/// adapter reads back as P-tuning v2 (`PTuningV2`).
public struct PrefixTuning: TuningMethod {
    public static let name = "prefix"
    public static let summary = "prefix tuning: deep prompts produced by an MLP"
    public static let peftTypes: [String] = []
    public static let defaultLearningRate: Float = 1e-3

    public var length: Int
    public var hidden: Int
    public var positionOffset: Int?

    public init(length: Int, hidden: Int, positionOffset: Int? = nil) {
        self.length = length
        self.hidden = hidden
        self.positionOffset = positionOffset
    }

    public init(settings: JSONFields) throws {
        self.init(length: try settings.int("prompt_length"), hidden: try settings.int("prefix_hidden"),
                  positionOffset: settings.json["position_offset"] as? Int)
    }

    public var settings: [String: Any] {
        var object: [String: Any] = ["prompt_length": length, "prefix_hidden": hidden]
        if let positionOffset { object["position_offset"] = positionOffset }
        return object
    }

    public func validate(config: BertConfig) throws {
        try DeepPrompt.validate(length: length, offset: positionOffset, config: config)
        try SettingCheck.width(hidden, "--prefix-hidden")
    }

    public var positionsBeforeTokens: Int { positionOffset ?? length }

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [PromptAdapter.initialized(ContinuousPrompt(placement: .keyValues, reparameterization: .prefixMLP(hidden: hidden),
                                                    length: length, config: weights.config,
                                                    positionOffset: positionOffset), seed: seed)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        try PromptAdapter.content(of: model, peftType: "PREFIX_TUNING", fields: [
            "prefix_projection": true, "encoder_hidden_size": hidden,
        ].merging(DeepPrompt.fields(length: length, offset: positionOffset)) { $1 })
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        try PTuningV2.read(peft: peft, weights: weights, kind: kind)
    }
}

extension MethodSpec {
    public static func prefix(length: Int, hidden: Int, positionOffset: Int? = nil) -> MethodSpec {
        MethodSpec(PrefixTuning(length: length, hidden: hidden, positionOffset: positionOffset))
    }
}
