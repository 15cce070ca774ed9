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

/// An adapter as a method writes it: `adapter_config.json` fields beyond the common ones, the
/// tensors under their stored names, where the head's tensors go, and `ptune.json` extras.
public struct PeftAdapterContent {
    public var fields: [String: Any]
    public var tensors: [(name: String, tensor: Tensor)]
    /// Prefix of the classifier's tensor names (`base_model.`, `base_model.model.` or none).
    public var classifierPrefix: String
    public var extras: [String: Any] = [:]

    public init(fields: [String: Any], tensors: [(name: String, tensor: Tensor)], classifierPrefix: String) {
        self.fields = fields
        self.tensors = tensors
        self.classifierPrefix = classifierPrefix
    }

    /// The fields with which PEFT's prompt configs (and PTune's FREEZE and FULL) describe the model.
    static func modelShapeFields(_ config: BertConfig) -> [String: Any] {
        ["num_attention_heads": config.heads, "num_layers": config.layers, "num_transformer_submodules": 1,
         "token_dim": config.hiddenSize]
    }

    /// The base model's trained weights under transformers' names (Freeze and full fine-tuning).
    static func trainedBaseTensors(_ model: TunedModel) -> [(name: String, tensor: Tensor)] {
        model.weights.parameters.trainable.map { ("bert.\($0.name)", $0.value) }
    }
}

/// An adapter folder being read: its config, PTune's extras and its tensors.
public struct PeftAdapterSource {
    public let config: JSONFields
    public let extras: JSONFields
    let tensors: AdapterTensors
    public var configPath: String { config.source }

    /// Reads the stored tensor `name` into `parameter`, which must have its shape.
    public func read(_ name: String, into parameter: Parameter) throws { try tensors.read(name, into: parameter) }

    public func holds(_ name: String) -> Bool { tensors.file.names.contains(name) }

    /// Passes over the tensors PEFT's own loader ignores: with bias "all", PEFT 0.12 also saves the
    /// classifier wrapper's inner biases (`classifier.modules_to_save.bias`,
    /// `classifier.original_module.bias`).
    func skipClassifierWrapperTensors() {
        for name in tensors.unread
        where name.contains("classifier.modules_to_save.") || name.contains("classifier.original_module.") {
            tensors.skip(name)
        }
    }

    /// Refuses a config whose `field` holds anything but `expected` (absent counts as expected).
    public func unsupported(_ field: String, unless expected: Any) throws {
        guard let value = config.json[field] else { return }
        guard !NSArray(array: [value]).isEqual(to: [expected]) else { return }
        throw InputError(configPath, "not supported: \(field) = \(value) (PTune reads \(field) = \(expected) only)")
    }

    /// The layer count, hidden size and heads the config was made for must be the model's.
    func checkModelShape(_ model: BertConfig) throws {
        for (field, expected, what) in [("num_layers", model.layers, "layers"), ("token_dim", model.hiddenSize, "hidden size"),
                                        ("num_attention_heads", model.heads, "attention heads")] {
            let value = try config.int(field)
            guard value == expected else {
                throw InputError(configPath, "\(field) is \(value) but the model has \(expected) \(what)")
            }
        }
    }

    /// Freeze and full fine-tuning: every `bert.…` tensor overwrites the weight of that name.
    func readTrainedBaseTensors(into weights: BertWeights) throws {
        for name in tensors.file.names where name.hasPrefix("bert.") {
            guard let parameter = weights.parameters[String(name.dropFirst(5))] else {
                throw InputError(tensors.file.path, "tensor '\(name)' names no weight of the model")
            }
            try read(name, into: parameter)
        }
    }
}

/// What reading an adapter builds: the method as the config describes it, its components on the
/// weights, and where the classifier's tensors are.
public struct PeftAdapterLoaded {
    public var method: any TuningMethod
    public var components: [TuningComponent]
    public var classifierPrefix: String

    public init(method: any TuningMethod, components: [TuningComponent], classifierPrefix: String) {
        self.method = method
        self.components = components
        self.classifierPrefix = classifierPrefix
    }
}

/// Adapters in PEFT's on-disk format: `adapter_config.json` and `adapter_model.safetensors`,
/// with PEFT's config fields and tensor names, so adapters move between PTune and the
/// Python stack. PTune adds `ptune.json` (label names, training settings PEFT does not keep).
/// What each method writes and reads is in its folder (`TuningMethod.peftAdapter`, `read`).
public enum PeftAdapter {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"
    public static let extrasFile = "ptune.json"

    // MARK: Writing

    /// Writes `model`'s adapter to `folder`, replacing what was there only once every file is written.
    public static func write(_ model: TunedModel, info: AdapterInfo, to folder: String) throws {
        let content = try info.spec.method.peftAdapter(of: model)
        var fields: [String: Any] = [
            "auto_mapping": NSNull(), "base_model_name_or_path": info.baseModel, "inference_mode": true,
            "revision": NSNull(), "task_type": info.kind == .classification ? "SEQ_CLS" : "TOKEN_CLS",
        ]
        fields.merge(content.fields) { $1 }
        var extras = content.extras
        extras["method"] = info.spec.name
        if let labels = info.labels { extras["labels"] = labels }
        let tensors = content.tensors + model.head.parameters.map { (content.classifierPrefix + $0.name, $0.value) }

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

    // MARK: Reading

    /// Reads the adapter in `folder` onto `weights` (which it modifies: LoRA and IA3 attach, Freeze
    /// and full fine-tuning overwrite the trained weights) and returns the ready model.
    /// Errors name the file and the field or tensor that does not fit.
    public static func read(_ folder: String, weights: BertWeights) throws -> (model: TunedModel, info: AdapterInfo) {
        let configPath = folder + "/" + configFile
        if !FileManager.default.fileExists(atPath: configPath),
           FileManager.default.fileExists(atPath: folder + "/best_adapter/" + configFile) {
            throw InputError(folder, "is a training run's folder, not an adapter; its adapter is \(folder)/best_adapter")
        }
        let fields = try JSONFields(contentsOf: configPath)
        let extrasPath = folder + "/" + extrasFile
        let extras = FileManager.default.fileExists(atPath: extrasPath) ? try JSONFields(contentsOf: extrasPath)
            : JSONFields([:], source: extrasPath)
        let file = AdapterTensors(try SafeTensorsFile(path: folder + "/" + weightsFile))
        let config = weights.config
        let kind: TaskKind
        switch try fields.string("task_type") {
        case "SEQ_CLS": kind = .classification
        case "TOKEN_CLS": kind = .tagging
        case let other: throw InputError(configPath, "not supported: task_type '\(other)' (PTune reads SEQ_CLS and TOKEN_CLS)")
        }
        let peftType = try fields.string("peft_type")
        guard let method = TuningMethods.all.first(where: { $0.peftTypes.contains(peftType) }) else {
            let known = TuningMethods.all.flatMap { $0.peftTypes }
            throw InputError(configPath, "not supported: peft_type '\(peftType)' (PTune reads \(known.joined(separator: ", ")))")
        }
        let loaded = try method.read(peft: PeftAdapterSource(config: fields, extras: extras, tensors: file),
                                     weights: weights, kind: kind)

        let classifierName = loaded.classifierPrefix + "classifier.weight"
        let classifierShape = try file.file.info(classifierName).shape
        guard classifierShape.count == 2, classifierShape[0] > 0 else {
            throw InputError(file.file.path, "tensor '\(classifierName)' has shape \(classifierShape); a classifier is (labels, hidden)")
        }
        let labelCount = classifierShape[0]
        let head = TaskHead(kind: kind, labels: labelCount, hiddenSize: config.hiddenSize, dropout: config.headDropout, seed: 0)
        try file.read(classifierName, into: head.classifier.weight)
        try file.read(loaded.classifierPrefix + "classifier.bias", into: head.classifier.bias)
        let labels = extras.json["labels"] as? [String]
        if let labels, labels.count != labelCount {
            throw InputError(extrasPath, "\(labels.count) labels but the classifier has \(labelCount) outputs")
        }
        if let unused = file.unread.sorted().first {
            // A base weight the config does not account for is a feature PTune does not know;
            // anything else belongs to another architecture.
            let baseName = ptuneParameterName(peftName: unused.replacingOccurrences(of: ".base_layer.", with: "."))
            if let weight = weights.parameters[baseName] {
                throw InputError(file.file.path, "not supported: tensor '\(unused)' replaces the model's \(weight.name), "
                                 + "which the config neither adapts nor lists in modules_to_save or bias")
            }
            throw InputError(file.file.path, "tensor '\(unused)' fits nothing in this model (is the adapter for another model?)")
        }
        let model = TunedModel(weights: weights, components: loaded.components, head: head)
        let info = AdapterInfo(spec: MethodSpec(loaded.method), kind: kind, labels: labels,
                               baseModel: (fields.json["base_model_name_or_path"] as? String) ?? "")
        return (model, info)
    }

    /// Sets every trainable parameter of `model` (a new run of `method`) to its value in the
    /// adapter at `folder`, read onto `weights`: a checkpoint of the run's model of its own, which
    /// reading modifies. The adapter must be of the same method, train the same parameters in the
    /// same shapes and have a head as wide; settings that hold no values (dropout) may differ.
    public static func readStartValues(_ folder: String, into model: TunedModel, method: MethodSpec,
                                       weights: BertWeights) throws {
        let (adapter, info) = try read(folder, weights: weights)
        guard info.spec.name == method.name else {
            throw InputError(folder, "holds a \(info.spec.name) adapter; this run trains \(method.name)")
        }
        guard adapter.head.labelCount == model.head.labelCount, adapter.head.kind == model.head.kind else {
            let (theirs, ours) = (adapter.head, model.head)
            throw InputError(folder, "the adapter's head (\(theirs.kind.rawValue), \(theirs.labelCount) labels) "
                             + "does not fit this task's (\(ours.kind.rawValue), \(ours.labelCount) labels)")
        }
        let settings = "are its settings \(info.spec.json) this run's \(method.json)?"
        let trained = Set(model.trainable.map(\.name))
        if let extra = adapter.trainable.map(\.name).first(where: { !trained.contains($0) }) {
            throw InputError(folder, "the adapter trains \(extra), which this run does not (\(settings))")
        }
        for parameter in model.trainable {
            guard let stored = adapter.parameters[parameter.name], stored.shape == parameter.shape else {
                let found = adapter.parameters[parameter.name].map { "shape \($0.shape)" } ?? "nothing"
                throw InputError(folder, "this run trains \(parameter.name) of shape \(parameter.shape); the "
                                 + "adapter holds \(found) for it (\(settings))")
            }
            parameter.value.copy(from: stored.value)
        }
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

    func skip(_ name: String) { unread.remove(name) }

    func read(_ name: String, into parameter: Parameter) throws {
        try file.read(name, into: parameter)
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
