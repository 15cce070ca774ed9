import Foundation
import Model

/// IA3 as PEFT 0.12's `IA3Config` has it, with PEFT's defaults for BERT: vectors on `key`,
/// `value` and every `output.dense` (the attention output and the feed-forward output), the latter
/// scaling their inputs.
public struct IA3Method: TuningMethod {
    public static let name = "ia3"
    public static let summary = "IA3: learned vectors rescaling keys, values and feed-forward inputs"
    public static let peftTypes = ["IA3"]
    // IA3's vectors start at one and move by a few tenths; its paper trains them at 3e-3. On
    // sentiment, 300 steps of 16 at 5e-3 reached 0.767 test accuracy (P-tuning v2's range).
    public static let defaultLearningRate: Float = 5e-3

    public static let defaultTargets = ["key", "value", "output.dense"]
    public static let defaultFeedForward = ["output.dense"]

    public var targets: PeftTargets
    /// PEFT's `feedforward_modules`: a target whose name ends with one of these (no dot: PEFT's
    /// test) or, for a regex, matches it whole, scales its input.
    public var feedForward: PeftTargets
    public var modulesToSave: [String]

    public init(targets: PeftTargets = .list(defaultTargets), feedForward: PeftTargets = .list(defaultFeedForward),
                modulesToSave: [String] = []) {
        (self.targets, self.feedForward, self.modulesToSave) = (targets, feedForward, modulesToSave)
    }

    public init(settings: JSONFields) throws {
        let source = settings.source
        self.init(targets: try PeftTargets(settings.json["ia3_targets"] ?? Self.defaultTargets, field: "ia3_targets",
                                           source: source),
                  feedForward: try PeftTargets(settings.json["ia3_feedforward"] ?? Self.defaultFeedForward,
                                               field: "ia3_feedforward", source: source),
                  modulesToSave: try PeftFields.strings(settings.json["modules_to_save"], field: "modules_to_save",
                                                        source: source) ?? [])
    }

    public var settings: [String: Any] {
        var object: [String: Any] = ["ia3_targets": targets.json, "ia3_feedforward": feedForward.json]
        if !modulesToSave.isEmpty { object["modules_to_save"] = modulesToSave }
        return object
    }

    public func validate(config: BertConfig) throws {
        for (targets, option) in [(targets, "--ia3-targets"), (feedForward, "--ia3-feedforward")] {
            if case let .regex(pattern) = targets { _ = try PeftTargets.regex(pattern, field: option) }
        }
        // PEFT's own check: every feed-forward module is a target.
        if case let .list(names) = targets, case let .list(feedForward) = feedForward {
            let extra = feedForward.filter { !names.contains($0) }
            try SettingCheck.require(extra.isEmpty, "--ia3-feedforward",
                                     "\(extra) must also be targets (--ia3-targets \(names.joined(separator: ",")))")
        }
    }

    func isFeedForward(_ key: String) throws -> Bool {
        switch feedForward {
        case let .regex(pattern): try key.wholeMatch(of: PeftTargets.regex(pattern, field: "feedforward_modules")) != nil
        case let .list(names): names.contains { key.hasSuffix($0) }
        }
    }

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [try IA3(weights: weights, method: self, kind: kind)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        guard let ia3 = model.components.compactMap({ $0 as? IA3 }).first else {
            throw InputError("adapter", "the model has no IA3 component to save")
        }
        let fields: [String: Any] = [
            "peft_type": "IA3", "target_modules": targets.json, "feedforward_modules": feedForward.json,
            "fan_in_fan_out": false, "init_ia3_weights": true, "modules_to_save": modulesToSave + ["classifier", "score"],
        ]
        let tensors = ia3.parameters.map { ("base_model.model.\(transformersName($0.name))", $0.value) }
            + ia3.unfrozen.map { (peftBaseTensorName($0, wrapped: []), $0.value) }
        return PeftAdapterContent(fields: fields, tensors: tensors, classifierPrefix: "base_model.model.")
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        let config = peft.config, source = config.source
        try peft.unsupported("fan_in_fan_out", unless: false)
        let method = IA3Method(
            targets: try PeftTargets(config.json["target_modules"], field: "target_modules", source: source),
            feedForward: try PeftTargets(config.json["feedforward_modules"], field: "feedforward_modules", source: source),
            modulesToSave: try PeftFields.savedBaseModules(config, source: source))
        let ia3 = try IA3(weights: weights, method: method, kind: kind)
        for parameter in ia3.parameters { try peft.read("base_model.model.\(transformersName(parameter.name))", into: parameter) }
        for parameter in ia3.unfrozen { try peft.read(peftBaseTensorName(parameter, wrapped: []), into: parameter) }
        peft.skipClassifierWrapperTensors()
        return PeftAdapterLoaded(method: method, components: [ia3], classifierPrefix: "base_model.model.")
    }
}

extension MethodSpec {
    public static func ia3(targets: [String] = IA3Method.defaultTargets,
                           feedForward: [String] = IA3Method.defaultFeedForward) -> MethodSpec {
        MethodSpec(IA3Method(targets: .list(targets), feedForward: .list(feedForward)))
    }
}
