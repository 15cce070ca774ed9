import Foundation
import Model

/// Which biases of the base model LoRA trains (PEFT's `bias`).
public enum LoRABias: String, CaseIterable, Sendable {
    case none, all
    /// The biases of the layers LoRA adapts.
    case loraOnly = "lora_only"
}

/// LoRA with every option of PEFT 0.12's `LoraConfig` that applies to a BERT encoder.
public struct LoRAMethod: TuningMethod {
    public static let name = "lora"
    public static let summary = "LoRA: low-rank updates of chosen linear layers"
    public static let peftTypes = ["LORA"]
    public static let defaultLearningRate: Float = 5e-4

    public var rank: Int
    public var alpha: Float
    public var dropout: Float
    /// PEFT's `target_modules`: names (a module matches when equal or ending with `.name`) or a regex.
    public var targets: PeftTargets
    /// PEFT's `layers_to_transform` and `layers_pattern`: only these layers' modules, for list targets.
    public var layers: [Int]?
    public var layersPattern: [String]?
    /// PEFT's `rank_pattern` and `alpha_pattern`: r and alpha for modules ending with `.key` (a regex).
    public var rankPattern: [String: Int]
    public var alphaPattern: [String: Float]
    public var bias: LoRABias
    /// Base-model modules trained and saved whole (PEFT's `modules_to_save`; the classifier always is).
    public var modulesToSave: [String]
    /// Rank-stabilised scaling, alpha / √r (PEFT's `use_rslora`).
    public var rsLoRA: Bool

    public init(rank: Int, alpha: Float, dropout: Float = 0, targets: PeftTargets, layers: [Int]? = nil,
                layersPattern: [String]? = nil, rankPattern: [String: Int] = [:], alphaPattern: [String: Float] = [:],
                bias: LoRABias = .none, modulesToSave: [String] = [], rsLoRA: Bool = false) {
        (self.rank, self.alpha, self.dropout, self.targets) = (rank, alpha, dropout, targets)
        (self.layers, self.layersPattern, self.rankPattern, self.alphaPattern) = (layers, layersPattern, rankPattern, alphaPattern)
        (self.bias, self.modulesToSave, self.rsLoRA) = (bias, modulesToSave, rsLoRA)
    }

    public init(settings: JSONFields) throws {
        let source = settings.source
        self.init(rank: try settings.int("lora_r"), alpha: try settings.float("lora_alpha"),
                  dropout: try settings.float("lora_dropout", default: 0),
                  targets: try PeftTargets(settings.json["lora_targets"], field: "lora_targets", source: source))
        layers = try PeftFields.layers(settings.json["lora_layers"], field: "lora_layers", source: source)
        layersPattern = try PeftFields.strings(settings.json["lora_layers_pattern"], field: "lora_layers_pattern",
                                               source: source)
        rankPattern = try PeftFields.ranks(settings.json["lora_rank_pattern"], field: "lora_rank_pattern", source: source)
        alphaPattern = try PeftFields.alphas(settings.json["lora_alpha_pattern"], field: "lora_alpha_pattern", source: source)
        let biasName = try settings.string("lora_bias", default: "none")
        guard let bias = LoRABias(rawValue: biasName) else {
            throw InputError(source, "field 'lora_bias' must be none, all or lora_only, not '\(biasName)'")
        }
        self.bias = bias
        modulesToSave = try PeftFields.strings(settings.json["modules_to_save"], field: "modules_to_save", source: source) ?? []
        rsLoRA = try settings.bool("lora_rslora", default: false)
    }

    public var settings: [String: Any] {
        var object: [String: Any] = ["lora_r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "lora_targets": targets.json]
        if let layers { object["lora_layers"] = layers }
        if let layersPattern { object["lora_layers_pattern"] = layersPattern }
        if !rankPattern.isEmpty { object["lora_rank_pattern"] = rankPattern }
        if !alphaPattern.isEmpty { object["lora_alpha_pattern"] = alphaPattern }
        if bias != .none { object["lora_bias"] = bias.rawValue }
        if !modulesToSave.isEmpty { object["modules_to_save"] = modulesToSave }
        if rsLoRA { object["lora_rslora"] = true }
        return object
    }

    public func validate(config: BertConfig) throws {
        try SettingCheck.require(alpha.isFinite, "--lora-alpha", "must be a finite number, not \(alpha)")
        try SettingCheck.rate(dropout, "--lora-dropout")
        if case let .regex(pattern) = targets { _ = try PeftTargets.regex(pattern, field: "--lora-target-regex") }
        for (key, value) in rankPattern {
            _ = try PeftTargets.regex(key, field: "--lora-rank-pattern")
            try SettingCheck.require(value > 0, "--lora-rank-pattern", "rank of '\(key)' must be positive, not \(value)")
        }
        for (key, value) in alphaPattern {
            _ = try PeftTargets.regex(key, field: "--lora-alpha-pattern")
            try SettingCheck.require(value.isFinite, "--lora-alpha-pattern", "alpha of '\(key)' must be finite, not \(value)")
        }
    }

    /// PEFT's choice of r and alpha for the module `key`: the first pattern (rank patterns, then
    /// alpha patterns, each in sorted order as a saved config holds them) that `.*\.pattern`
    /// matches whole names the entry both are looked up under.
    func rankAndAlpha(_ key: String) throws -> (rank: Int, alpha: Float) {
        for pattern in rankPattern.keys.sorted() + alphaPattern.keys.sorted() {
            if try key.wholeMatch(of: PeftTargets.regex(".*\\.\(pattern)", field: "rank_pattern")) != nil {
                return (rankPattern[pattern] ?? rank, alphaPattern[pattern] ?? alpha)
            }
        }
        return (rank, alpha)
    }

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [try LoRA(weights: weights, method: self, kind: kind, seed: seed)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        guard let lora = model.components.compactMap({ $0 as? LoRA }).first else {
            throw InputError("adapter", "the model has no LoRA component to save")
        }
        let fields: [String: Any] = [
            "peft_type": "LORA", "r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": targets.json,
            "alpha_pattern": alphaPattern, "rank_pattern": rankPattern, "bias": bias.rawValue, "fan_in_fan_out": false,
            "init_lora_weights": true, "layer_replication": NSNull(),
            "layers_pattern": layersPattern.map { $0.count == 1 ? $0[0] as Any : $0 } ?? NSNull(),
            "layers_to_transform": layers ?? NSNull(), "loftq_config": [String: Any](), "megatron_config": NSNull(),
            "megatron_core": "megatron.core", "modules_to_save": modulesToSave + ["classifier", "score"],
            "use_dora": false, "use_rslora": rsLoRA,
        ]
        let wrapped = Set(lora.modules)
        let tensors = lora.parameters.map { ("base_model.model.\(transformersName($0.name))", $0.value) }
            + lora.unfrozen.map { (peftBaseTensorName($0, wrapped: wrapped), $0.value) }
        return PeftAdapterContent(fields: fields, tensors: tensors, classifierPrefix: "base_model.model.")
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        let config = peft.config, source = config.source
        try peft.unsupported("use_dora", unless: false)
        try peft.unsupported("fan_in_fan_out", unless: false)
        try peft.unsupported("layer_replication", unless: NSNull())
        // PiSSA, OLoRA and LoftQ rewrite the base weights at initialisation (PEFT redoes it on
        // loading), so their A and B are relative to weights PTune does not compute.
        if let initial = config.json["init_lora_weights"] as? String, initial != "gaussian" {
            throw InputError(source, "not supported: init_lora_weights = \(initial) (it changes the base weights)")
        }
        let layersPattern = config.json["layers_pattern"].flatMap { $0 is NSNull ? nil : $0 }
        let layers = config.json["layers_to_transform"].flatMap { $0 is NSNull ? nil : $0 }
        let biasName = try config.string("bias", default: "none")
        guard let bias = LoRABias(rawValue: biasName) else { throw InputError(source, "not supported: bias '\(biasName)'") }
        let method = LoRAMethod(
            rank: try config.int("r"), alpha: try config.float("lora_alpha"),
            dropout: try config.float("lora_dropout", default: 0),
            targets: try PeftTargets(config.json["target_modules"], field: "target_modules", source: source),
            layers: try PeftFields.layers(layers, field: "layers_to_transform", source: source),
            layersPattern: try PeftFields.strings(layersPattern, field: "layers_pattern", source: source),
            rankPattern: try PeftFields.ranks(config.json["rank_pattern"], field: "rank_pattern", source: source),
            alphaPattern: try PeftFields.alphas(config.json["alpha_pattern"], field: "alpha_pattern", source: source),
            bias: bias, modulesToSave: try PeftFields.savedBaseModules(config, source: source),
            rsLoRA: try config.bool("use_rslora", default: false))
        try method.validate(config: weights.config)
        let lora = try LoRA(weights: weights, method: method, kind: kind, seed: 0)
        for parameter in lora.parameters { try peft.read("base_model.model.\(transformersName(parameter.name))", into: parameter) }
        // Trained biases and saved modules; PEFT 0.12 saves no biases with lora_only, so they may be absent.
        let wrapped = Set(lora.modules)
        for parameter in lora.unfrozen {
            let name = peftBaseTensorName(parameter, wrapped: wrapped)
            if bias == .loraOnly && !peft.holds(name) { continue }
            try peft.read(name, into: parameter)
        }
        peft.skipClassifierWrapperTensors()
        return PeftAdapterLoaded(method: method, components: [lora], classifierPrefix: "base_model.model.")
    }
}

extension MethodSpec {
    public static func lora(rank: Int, alpha: Float, dropout: Float, targets: [String]) -> MethodSpec {
        MethodSpec(LoRAMethod(rank: rank, alpha: alpha, dropout: dropout, targets: .list(targets)))
    }
}
