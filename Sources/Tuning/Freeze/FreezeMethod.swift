import Model

/// Freeze tuning: `modules` of the last `layers` layers train. PEFT has no such type: the adapter
/// is written with `peft_type` FREEZE and transformers' tensor names (`bert.encoder.…`,
/// `classifier.…`), which `load_state_dict(strict=False)` accepts.
public struct FreezeMethod: TuningMethod {
    public static let name = "freeze"
    public static let summary = "Freeze tuning: chosen modules of the last layers train"
    public static let peftTypes = ["FREEZE"]
    public static let defaultLearningRate: Float = 1e-4

    public var layers: Int
    public var modules: FreezeModules

    public init(layers: Int, modules: FreezeModules) {
        self.layers = layers
        self.modules = modules
    }

    public init(settings: JSONFields) throws {
        guard let modules = FreezeModules(rawValue: try settings.string("freeze_modules")) else {
            throw InputError(settings.source, "field 'freeze_modules' must be ff, attention or all")
        }
        self.init(layers: try settings.int("freeze_layers"), modules: modules)
    }

    public var settings: [String: Any] { ["freeze_layers": layers, "freeze_modules": modules.rawValue] }

    // The layer count is checked against the model's layers when the component is built.
    public func validate(config: BertConfig) throws {}

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [try FreezeTuning(weights: weights, lastLayers: layers, modules: modules)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        let config = model.weights.config
        var fields = PeftAdapterContent.modelShapeFields(config)
        fields.merge(["peft_type": "FREEZE", "layers_to_transform": Array((config.layers - layers)..<config.layers),
                      "modules": modules.rawValue]) { $1 }
        return PeftAdapterContent(fields: fields, tensors: PeftAdapterContent.trainedBaseTensors(model), classifierPrefix: "")
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        try peft.checkModelShape(weights.config)
        try peft.readTrainedBaseTensors(into: weights)
        let modules = FreezeModules(rawValue: try peft.config.string("modules", default: "ff")) ?? .ff
        return PeftAdapterLoaded(method: FreezeMethod(layers: try peft.config.ints("layers_to_transform").count, modules: modules),
                                 components: [], classifierPrefix: "")
    }
}

extension MethodSpec {
    public static func freeze(layers: Int, modules: FreezeModules) -> MethodSpec {
        MethodSpec(FreezeMethod(layers: layers, modules: modules))
    }
}
