import Foundation
import Kernels
import Model

/// LoRA on the encoder's linear layers that a `LoRAMethod` names: each keeps its frozen weight W
/// and learns B·A (A: r × in, B: out × r, B starting at zero) scaled by alpha / r (or alpha / √r),
/// with r and alpha per module when the method's patterns say so. The base model's biases and
/// `modules_to_save` that the method trains are unfrozen here.
public final class LoRA: TuningComponent {
    public let method: LoRAMethod
    /// Module paths the update is attached to (`encoder.layer.0.attention.self.query`, `pooler.dense`).
    public let modules: [String]
    public let parameters: [Parameter]
    /// The base model's parameters this method trains (biases, `modules_to_save`).
    public let unfrozen: [Parameter]

    /// Attaches LoRA to every linear layer of `weights` that the method matches, with A drawn as PEFT
    /// does (Kaiming-uniform, a = √5, i.e. U(−1/√in, 1/√in)) from `seed` and B zero. A tagging model
    /// has no pooler (transformers builds none for token classification), so nothing attaches there.
    public init(weights: BertWeights, method: LoRAMethod, kind: TaskKind, seed: UInt64) throws {
        self.method = method
        var registry = Parameters()
        var modules: [String] = []
        var random = SplitMix(seed: seed)
        for (module, linear) in weights.linears where kind == .classification || !module.hasPrefix("pooler.") {
            let key = transformersName(module)
            guard try method.targets.matches(key, layers: method.layers, layersPattern: method.layersPattern) else { continue }
            let (rank, alpha) = try method.rankAndAlpha(key)
            guard rank > 0 else { throw InputError("--lora-r", "rank r must be positive, not \(rank) for \(module)") }
            // A rank past the smaller side adds nothing a full update would not, and sizes A and B by it.
            let largest = min(linear.inFeatures, linear.outFeatures)
            guard rank <= largest else {
                throw InputError("--lora-r", "rank r must be at most \(largest) for \(module), not \(rank)")
            }
            let a = registry.make("\(module).lora_A.weight", [rank, linear.inFeatures])
            let b = registry.make("\(module).lora_B.weight", [linear.outFeatures, rank])
            let bound = 1 / Float(linear.inFeatures).squareRoot()
            for i in 0..<a.value.count { a.value[i] = Float.random(in: -bound...bound, using: &random) }
            let scale = method.rsLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank)
            linear.lowRank = LowRankUpdate(a: a, b: b, scale: scale, dropoutRate: method.dropout)
            modules.append(module)
        }
        guard !modules.isEmpty else {
            throw InputError("--lora-targets", "target modules \(method.targets.json) match no linear layer of the model")
        }
        self.modules = modules
        parameters = registry.all
        let saved = baseParameters(inModules: method.modulesToSave, weights: weights, kind: kind)
        if let clash = saved.first(where: { modules.contains(moduleName(of: $0)) }) {
            throw InputError("--modules-to-save", "\(clash.name) is in a module LoRA adapts; a module is adapted or saved, not both")
        }
        let biases = weights.parameters.all.filter { parameter in
            guard parameter.name.hasSuffix(".bias"), kind == .classification || !parameter.name.hasPrefix("pooler.") else {
                return false
            }
            switch method.bias {
            case .none: return false
            case .all: return true
            case .loraOnly: return modules.contains(String(parameter.name.dropLast(".bias".count)))
            }
        }
        unfrozen = saved + biases.filter { bias in !saved.contains { $0 === bias } }
        for parameter in unfrozen { parameter.setTrainable(true) }
    }
}
