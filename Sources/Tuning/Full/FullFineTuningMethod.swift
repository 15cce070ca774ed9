import Model

/// Full fine-tuning, the baseline: every weight of the encoder and pooler trains. Written as
/// Freeze tuning is, with `peft_type` FULL.
public struct FullFineTuningMethod: TuningMethod {
    public static let name = "full"
    public static let summary = "full fine-tuning, the baseline"
    public static let peftTypes = ["FULL"]
    public static let defaultLearningRate: Float = 5e-5

    public init() {}
    public init(settings: JSONFields) throws {}
    public var settings: [String: Any] { [:] }
    public func validate(config: BertConfig) throws {}

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [FullFineTuning(weights: weights)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        var fields = PeftAdapterContent.modelShapeFields(model.weights.config)
        fields["peft_type"] = "FULL"
        return PeftAdapterContent(fields: fields, tensors: PeftAdapterContent.trainedBaseTensors(model), classifierPrefix: "")
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        try peft.checkModelShape(weights.config)
        try peft.readTrainedBaseTensors(into: weights)
        return PeftAdapterLoaded(method: FullFineTuningMethod(), components: [], classifierPrefix: "")
    }
}

extension MethodSpec {
    public static let full = MethodSpec(FullFineTuningMethod())
}

/// Full fine-tuning, the baseline: every weight of the encoder and pooler trains.
public final class FullFineTuning: TuningComponent {
    public let parameters: [Parameter] = []
    public init(weights: BertWeights) {
        for parameter in weights.parameters.all { parameter.setTrainable(true) }
    }
}
