import Kernels
import Model

/// A tuning method and its settings: what a user chooses on the command line and
/// what an adapter's config describes.
public enum MethodSpec: Equatable, Sendable {
    /// P-tuning v2: deep prompts of `length` vectors at every layer, trained directly, dropout on them.
    case ptv2(length: Int, dropout: Float, positionOffset: Int?)
    /// Prefix tuning: deep prompts produced by an MLP of `hidden` units.
    case prefix(length: Int, hidden: Int, positionOffset: Int?)
    /// P-tuning v1: `length` virtual input tokens produced by an LSTM or MLP prompt encoder.
    case ptv1(length: Int, encoder: PromptReparameterization)
    /// LoRA of rank r on the `targets` modules.
    case lora(rank: Int, alpha: Float, dropout: Float, targets: [String])
    /// Freeze tuning: `modules` of the last `layers` layers train.
    case freeze(layers: Int, modules: FreezeModules)
    /// Full fine-tuning, the baseline.
    case full

    /// The command-line name.
    public var name: String {
        switch self {
        case .ptv2: "ptv2"
        case .prefix: "prefix"
        case .ptv1: "ptv1"
        case .lora: "lora"
        case .freeze: "freeze"
        case .full: "full"
        }
    }

    /// Builds the method's components on `weights`, drawing initial values from `seed`.
    public func components(weights: BertWeights, seed: UInt64) throws -> [TuningComponent] {
        let config = weights.config
        try validate(config: config)
        func initialized(_ prompt: PromptTuning) -> PromptTuning {
            var random = SplitMix(seed: seed)
            prompt.initialize(using: &random)
            return prompt
        }
        switch self {
        case let .ptv2(length, dropout, offset):
            return [initialized(PromptTuning(placement: .keyValues, reparameterization: .none(dropout: dropout),
                                             length: length, config: config, positionOffset: offset))]
        case let .prefix(length, hidden, offset):
            return [initialized(PromptTuning(placement: .keyValues, reparameterization: .prefixMLP(hidden: hidden),
                                             length: length, config: config, positionOffset: offset))]
        case let .ptv1(length, encoder):
            return [initialized(PromptTuning(placement: .input, reparameterization: encoder, length: length, config: config))]
        case let .lora(rank, alpha, dropout, targets):
            return [try LoRA(weights: weights, rank: rank, alpha: alpha, dropout: dropout, targets: targets, seed: seed)]
        case let .freeze(layers, modules):
            return [try FreezeTuning(weights: weights, lastLayers: layers, modules: modules)]
        case .full:
            return [FullFineTuning(weights: weights)]
        }
    }
}

extension MethodSpec {
    /// The method as a JSON object (for a run's resolved config).
    public var json: [String: Any] {
        var object: [String: Any] = ["method": name]
        switch self {
        case let .ptv2(length, dropout, offset):
            object["prompt_length"] = length
            object["prompt_dropout"] = dropout
            if let offset { object["position_offset"] = offset }
        case let .prefix(length, hidden, offset):
            object["prompt_length"] = length
            object["prefix_hidden"] = hidden
            if let offset { object["position_offset"] = offset }
        case let .ptv1(length, encoder):
            object["prompt_length"] = length
            switch encoder {
            case let .lstm(hidden, layers):
                object.merge(["prompt_encoder": "lstm", "encoder_hidden": hidden, "encoder_layers": layers]) { $1 }
            case let .mlp(hidden): object.merge(["prompt_encoder": "mlp", "encoder_hidden": hidden]) { $1 }
            default: object["prompt_encoder"] = "none"
            }
        case let .lora(rank, alpha, dropout, targets):
            object.merge(["lora_r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "lora_targets": targets]) { $1 }
        case let .freeze(layers, modules):
            object.merge(["freeze_layers": layers, "freeze_modules": modules.rawValue]) { $1 }
        case .full:
            break
        }
        return object
    }

    /// Reads what `json` wrote; errors name `source` and the field.
    public init(json: [String: Any], source: String) throws {
        let fields = JSONFields(json, source: source)
        switch try fields.string("method") {
        case "ptv2":
            self = .ptv2(length: try fields.int("prompt_length"), dropout: try fields.float("prompt_dropout"),
                         positionOffset: json["position_offset"] as? Int)
        case "prefix":
            self = .prefix(length: try fields.int("prompt_length"), hidden: try fields.int("prefix_hidden"),
                           positionOffset: json["position_offset"] as? Int)
        case "ptv1":
            let length = try fields.int("prompt_length")
            switch try fields.string("prompt_encoder") {
            case "lstm": self = .ptv1(length: length, encoder: .lstm(hidden: try fields.int("encoder_hidden"),
                                                                     layers: try fields.int("encoder_layers")))
            case "mlp": self = .ptv1(length: length, encoder: .mlp(hidden: try fields.int("encoder_hidden")))
            default: self = .ptv1(length: length, encoder: .none(dropout: 0))
            }
        case "lora":
            self = .lora(rank: try fields.int("lora_r"), alpha: try fields.float("lora_alpha"),
                         dropout: try fields.float("lora_dropout"), targets: try fields.strings("lora_targets"))
        case "freeze":
            guard let modules = FreezeModules(rawValue: try fields.string("freeze_modules")) else {
                throw InputError(source, "field 'freeze_modules' must be ff, attention or all")
            }
            self = .freeze(layers: try fields.int("freeze_layers"), modules: modules)
        case "full":
            self = .full
        case let other:
            throw InputError(source, "unknown method '\(other)'")
        }
    }
}

extension MethodSpec {
    /// Positions the real tokens start after: a deep prompt's position offset, or P-tuning v1's
    /// virtual tokens (which take positions 0..<P).
    public var positionsBeforeTokens: Int {
        switch self {
        case let .ptv2(length, _, offset), let .prefix(length, _, offset): offset ?? length
        case let .ptv1(length, _): length
        case .lora, .freeze, .full: 0
        }
    }

    /// The most hidden units a prompt encoder may have: far past any useful size, well short of
    /// an allocation that fails.
    public static let maxEncoderWidth = 65_536

    /// Checks every number against the model before anything is sized by it; errors name the option.
    /// (LoRA's rank and Freeze's layer count are checked against the layers they touch when built.)
    public func validate(config: BertConfig) throws {
        // [CLS] and [SEP] need positions after the prompt's.
        let room = config.maxPositions - 2
        func require(_ holds: Bool, _ option: String, _ problem: String) throws {
            if !holds { throw InputError(option, problem) }
        }
        func rate(_ value: Float, _ option: String) throws {
            try require((0..<1).contains(value), option, "must be in [0, 1), not \(value)")
        }
        func width(_ value: Int, _ option: String) throws {
            try require((1...Self.maxEncoderWidth).contains(value), option,
                        "must be within 1...\(Self.maxEncoderWidth), not \(value)")
        }
        let (length, offset): (Int?, Int?) = switch self {
        case let .ptv2(length, _, offset), let .prefix(length, _, offset): (length, offset)
        case let .ptv1(length, _): (length, nil)
        case .lora, .freeze, .full: (nil, nil)
        }
        if let length {
            try require((1...max(room, 1)).contains(length), "--prompt-length",
                        "must be within 1...\(room) (the model has \(config.maxPositions) positions), not \(length)")
        }
        if let offset {
            try require((0...room).contains(offset), "--position-offset",
                        "must be within 0...\(room) (the model has \(config.maxPositions) positions), not \(offset)")
        }
        switch self {
        case let .ptv2(_, dropout, _): try rate(dropout, "--prompt-dropout")
        case let .prefix(_, hidden, _): try width(hidden, "--prefix-hidden")
        case let .ptv1(_, .lstm(hidden, layers)):
            try width(hidden, "--encoder-hidden")
            try require((1...16).contains(layers), "--encoder-layers", "must be within 1...16, not \(layers)")
        case let .ptv1(_, .mlp(hidden)): try width(hidden, "--encoder-hidden")
        case let .lora(_, alpha, dropout, _):
            try require(alpha.isFinite, "--lora-alpha", "must be a finite number, not \(alpha)")
            try rate(dropout, "--lora-dropout")
        default: break
        }
    }
}
