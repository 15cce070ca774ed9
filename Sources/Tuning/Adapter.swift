import Foundation
import Kernels
import Model

/// What an adapter folder says about itself beyond its tensors.
public struct AdapterInfo: Equatable {
    public var spec: MethodSpec
    public var kind: TaskKind
    /// Label (or tag) names in classifier order, when known (PTune writes them to `ptune.json`).
    public var labels: [String]?
    public var baseModel: String

    public init(spec: MethodSpec, kind: TaskKind, labels: [String]?, baseModel: String) {
        self.spec = spec
        self.kind = kind
        self.labels = labels
        self.baseModel = baseModel
    }
}

/// Adapters in PEFT's on-disk format: `adapter_config.json` and `adapter_model.safetensors`,
/// with PEFT's config fields and tensor names, so adapters move between PTune and the
/// Python stack. PTune adds `ptune.json` (label names, training settings PEFT does not keep).
/// Freeze tuning and full fine-tuning have no PEFT type: they are written with
/// `peft_type` FREEZE or FULL and transformers' tensor names (`bert.encoder.…`, `classifier.…`),
/// which `load_state_dict(strict=False)` accepts.
public enum PeftAdapter {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"
    public static let extrasFile = "ptune.json"

    // MARK: Writing

    /// Writes `model`'s adapter to `folder`, replacing what was there only once every file is written.
    public static func write(_ model: TunedModel, info: AdapterInfo, to folder: String) throws {
        let config = model.weights.config
        var fields: [String: Any] = [
            "auto_mapping": NSNull(), "base_model_name_or_path": info.baseModel, "inference_mode": true,
            "revision": NSNull(), "task_type": info.kind == .classification ? "SEQ_CLS" : "TOKEN_CLS",
        ]
        var tensors: [(name: String, tensor: Tensor)] = []
        var classifierPrefix = "base_model."
        let promptFields: [String: Any] = [
            "num_attention_heads": config.heads, "num_layers": config.layers, "num_transformer_submodules": 1,
            "token_dim": config.hiddenSize,
        ]
        var extras: [String: Any] = ["method": info.spec.name]
        if let labels = info.labels { extras["labels"] = labels }
        switch info.spec {
        case .ptv2, .prefix, .ptv1:
            let prompt = try promptComponent(model)
            prompt.computeOutput()
            tensors.append(("prompt_embeddings", prompt.output.value))
            fields.merge(promptFields) { $1 }
            fields["num_virtual_tokens"] = prompt.length
            switch info.spec {
            case let .ptv2(_, dropout, offset):
                fields.merge(["peft_type": "PREFIX_TUNING", "prefix_projection": false,
                              "encoder_hidden_size": config.hiddenSize]) { $1 }
                extras["prompt_dropout"] = dropout
                extras["position_offset"] = offset ?? prompt.length
            case let .prefix(_, hidden, offset):
                fields.merge(["peft_type": "PREFIX_TUNING", "prefix_projection": true, "encoder_hidden_size": hidden]) { $1 }
                extras["position_offset"] = offset ?? prompt.length
            case let .ptv1(_, encoder):
                let (type, hidden, layers): (String, Int, Int) = switch encoder {
                case let .lstm(hidden, layers): ("LSTM", hidden, layers)
                case let .mlp(hidden): ("MLP", hidden, 2)
                default: ("MLP", config.hiddenSize, 2)
                }
                fields.merge(["peft_type": "P_TUNING", "encoder_reparameterization_type": type,
                              "encoder_hidden_size": hidden, "encoder_num_layers": layers, "encoder_dropout": 0.0]) { $1 }
            default: break
            }
        case let .lora(rank, alpha, dropout, targets):
            guard let lora = model.components.compactMap({ $0 as? LoRA }).first else {
                throw InputError(folder, "the model has no LoRA component to save")
            }
            fields.merge([
                "peft_type": "LORA", "r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": targets,
                "alpha_pattern": [String: Any](), "rank_pattern": [String: Any](), "bias": "none",
                "fan_in_fan_out": false, "init_lora_weights": true, "layer_replication": NSNull(),
                "layers_pattern": NSNull(), "layers_to_transform": NSNull(), "loftq_config": [String: Any](),
                "megatron_config": NSNull(), "megatron_core": "megatron.core", "modules_to_save": ["classifier", "score"],
                "use_dora": false, "use_rslora": lora.rsLoRA,
            ]) { $1 }
            tensors += lora.parameters.map { ("base_model.model.bert.\($0.name)", $0.value) }
            classifierPrefix = "base_model.model."
        case let .freeze(layers, modules):
            fields.merge(promptFields) { $1 }
            fields.merge(["peft_type": "FREEZE", "layers_to_transform": Array((config.layers - layers)..<config.layers),
                          "modules": modules.rawValue]) { $1 }
            tensors += baseTensors(model)
            classifierPrefix = ""
        case .full:
            fields.merge(promptFields) { $1 }
            fields["peft_type"] = "FULL"
            tensors += baseTensors(model)
            classifierPrefix = ""
        }
        tensors += model.head.parameters.map { (classifierPrefix + $0.name, $0.value) }

        // Everything goes to a fresh folder beside the target, which then takes the target's place.
        let staging = folder + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            try writeJSON(fields, to: staging + "/" + configFile)
            try writeJSON(extras, to: staging + "/" + extrasFile)
            try writeSafeTensors(tensors, to: staging + "/" + weightsFile)
            try replaceFolder(folder, with: staging)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    private static func promptComponent(_ model: TunedModel) throws -> PromptTuning {
        guard let prompt = model.components.compactMap({ $0 as? PromptTuning }).first else {
            throw InputError("adapter", "the model has no prompt component to save")
        }
        return prompt
    }

    private static func baseTensors(_ model: TunedModel) -> [(name: String, tensor: Tensor)] {
        model.weights.parameters.trainable.map { ("bert.\($0.name)", $0.value) }
    }

    // MARK: Reading

    /// Reads the adapter in `folder` onto `weights` (which it modifies: LoRA attaches, Freeze and
    /// full fine-tuning overwrite the trained weights) and returns the ready model.
    /// Errors name the file and the field or tensor that does not fit.
    public static func read(_ folder: String, weights: BertWeights) throws -> (model: TunedModel, info: AdapterInfo) {
        let configPath = folder + "/" + configFile
        if !FileManager.default.fileExists(atPath: configPath),
           FileManager.default.fileExists(atPath: folder + "/best_adapter/" + configFile) {
            throw InputError(folder, "is a training run's folder, not an adapter; its adapter is \(folder)/best_adapter")
        }
        let fields = try JSONFields(contentsOf: configPath)
        let extras = try readExtras(folder + "/" + extrasFile)
        let file = AdapterTensors(try SafeTensorsFile(path: folder + "/" + weightsFile))
        let config = weights.config
        let kind: TaskKind
        switch try fields.string("task_type") {
        case "SEQ_CLS": kind = .classification
        case "TOKEN_CLS": kind = .tagging
        case let other: throw InputError(configPath, "task_type '\(other)' is not SEQ_CLS or TOKEN_CLS")
        }
        let peftType = try fields.string("peft_type")
        let known = ["PREFIX_TUNING", "P_TUNING", "LORA", "FREEZE", "FULL"]
        guard known.contains(peftType) else {
            throw InputError(configPath, "unknown peft_type '\(peftType)' (supported: \(known.joined(separator: ", ")))")
        }
        if peftType != "LORA" {
            for (field, expected, what) in [("num_layers", config.layers, "layers"), ("token_dim", config.hiddenSize, "hidden size"),
                                            ("num_attention_heads", config.heads, "attention heads")] {
                let value = try fields.int(field)
                guard value == expected else {
                    throw InputError(configPath, "\(field) is \(value) but the model has \(expected) \(what)")
                }
            }
        }

        var components: [TuningComponent] = []
        let spec: MethodSpec
        var classifierPrefix = "base_model."
        switch peftType {
        case "PREFIX_TUNING", "P_TUNING":
            let length = try fields.int("num_virtual_tokens")
            let placement: PromptPlacement = peftType == "P_TUNING" ? .input : .keyValues
            let offset = extras["position_offset"] as? Int
            let room = config.maxPositions - 2
            guard (1...max(room, 1)).contains(length) else {
                throw InputError(configPath, "num_virtual_tokens must be within 1...\(room) for this model, not \(length)")
            }
            if let offset, !(0...room).contains(offset) {
                throw InputError(folder + "/" + extrasFile, "position_offset must be within 0...\(room), not \(offset)")
            }
            let prompt = PromptTuning(placement: placement, reparameterization: .none(dropout: 0), length: length,
                                      config: config, positionOffset: offset)
            try file.read("prompt_embeddings", into: prompt.embedding)
            components = [prompt]
            spec = placement == .input ? .ptv1(length: length, encoder: .none(dropout: 0))
                : .ptv2(length: length, dropout: 0, positionOffset: offset)
        case "LORA":
            if try fields.bool("use_dora", default: false) { throw InputError(configPath, "use_dora is not supported") }
            for pattern in ["rank_pattern", "alpha_pattern"] where !((fields.json[pattern] as? [String: Any])?.isEmpty ?? true) {
                throw InputError(configPath, "\(pattern) is not supported")
            }
            let rank = try fields.int("r"), alpha = try fields.float("lora_alpha")
            let targets = try fields.strings("target_modules")
            let lora = try LoRA(weights: weights, rank: rank, alpha: alpha, dropout: 0, targets: targets, seed: 0,
                                rsLoRA: try fields.bool("use_rslora", default: false))
            for parameter in lora.parameters { try file.read("base_model.model.bert.\(parameter.name)", into: parameter) }
            components = [lora]
            spec = .lora(rank: rank, alpha: alpha, dropout: try fields.float("lora_dropout", default: 0), targets: targets)
            classifierPrefix = "base_model.model."
        default:   // FREEZE, FULL: the trained weights under transformers' names
            for name in file.file.names where name.hasPrefix("bert.") {
                let base = String(name.dropFirst(5))
                guard let parameter = weights.parameters[base] else {
                    throw InputError(file.file.path, "tensor '\(name)' names no weight of the model")
                }
                try file.read(name, into: parameter)
            }
            if peftType == "FULL" {
                spec = .full
            } else {
                let layers = try fields.ints("layers_to_transform").count
                let modules = FreezeModules(rawValue: try fields.string("modules", default: "ff")) ?? .ff
                spec = .freeze(layers: layers, modules: modules)
            }
            classifierPrefix = ""
        }

        let classifierName = classifierPrefix + "classifier.weight"
        let classifierShape = try file.file.info(classifierName).shape
        guard classifierShape.count == 2, classifierShape[0] > 0 else {
            throw InputError(file.file.path, "tensor '\(classifierName)' has shape \(classifierShape); a classifier is (labels, hidden)")
        }
        let labelCount = classifierShape[0]
        let head = TaskHead(kind: kind, labels: labelCount, hiddenSize: config.hiddenSize, dropout: config.hiddenDropout, seed: 0)
        try file.read(classifierName, into: head.classifier.weight)
        try file.read(classifierPrefix + "classifier.bias", into: head.classifier.bias)
        let labels = extras["labels"] as? [String]
        if let labels, labels.count != labelCount {
            throw InputError(folder + "/" + extrasFile, "\(labels.count) labels but the classifier has \(labelCount) outputs")
        }
        if let unused = file.unread.first {
            throw InputError(file.file.path, "tensor '\(unused)' fits nothing in this model (is the adapter for another model?)")
        }
        let model = TunedModel(weights: weights, components: components, head: head)
        let info = AdapterInfo(spec: spec, kind: kind, labels: labels,
                               baseModel: (fields.json["base_model_name_or_path"] as? String) ?? "")
        return (model, info)
    }

    private static func readExtras(_ path: String) throws -> [String: Any] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        return try JSONFields(contentsOf: path).json
    }
}

/// An adapter's tensors, read by name into parameters of the same shape, remembering which
/// were read so that a tensor meant for another model does not pass unnoticed.
final class AdapterTensors {
    let file: SafeTensorsFile
    private(set) var unread: Set<String>

    init(_ file: SafeTensorsFile) {
        self.file = file
        unread = Set(file.names)
    }

    func read(_ name: String, into parameter: Parameter) throws {
        let info = try file.info(name)
        guard info.shape == parameter.shape else {
            throw InputError(file.path, "tensor '\(name)' has shape \(info.shape) but the model needs \(parameter.shape)")
        }
        try file.readFloats(name, into: parameter.value.data)
        unread.remove(name)
    }
}

/// Writes a JSON object as PEFT does (sorted keys, indented), atomically.
public func writeJSON(_ object: [String: Any], to path: String) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    try writeAtomically(data, to: path)
}

/// Puts the finished `staging` folder where `folder` was; the old one is removed only after.
public func replaceFolder(_ folder: String, with staging: String) throws {
    let manager = FileManager.default
    let old = folder + ".old-\(getpid())"
    if manager.fileExists(atPath: folder) { try manager.moveItem(atPath: folder, toPath: old) }
    do {
        try manager.moveItem(atPath: staging, toPath: folder)
    } catch {
        if manager.fileExists(atPath: old) { try? manager.moveItem(atPath: old, toPath: folder) }
        throw InputError(folder, "cannot move the written adapter into place (\(error.localizedDescription))")
    }
    try? manager.removeItem(atPath: old)
}
