import Foundation
import Kernels
import Model

/// LoRA on a chosen set of the encoder's linear layers: each keeps its frozen weight W
/// and learns B·A (A: r × in, B: out × r, B starting at zero) scaled by alpha / r.
public final class LoRA: TuningComponent {
    public let rank: Int
    public let alpha: Float
    public let dropout: Float
    /// Rank-stabilised scaling, alpha / √r (PEFT's `use_rslora`).
    public let rsLoRA: Bool
    /// PEFT's `target_modules`: a module matches when its name equals a target or ends with `.target`.
    public let targets: [String]
    /// Module paths the update is attached to (`encoder.layer.0.attention.self.query`, `pooler.dense`).
    public let modules: [String]
    public let parameters: [Parameter]

    /// The linear layers a PTune user may name, and their module paths within a layer.
    public static let targetNames = ["query", "key", "value", "attention.output.dense", "intermediate.dense",
                                     "output.dense", "pooler.dense", "dense"]

    /// Attaches LoRA to every linear layer of `weights` that matches `targets`, with A drawn as PEFT
    /// does (Kaiming-uniform, a = √5, i.e. U(−1/√in, 1/√in)) from `seed` and B zero.
    public init(weights: BertWeights, rank: Int, alpha: Float, dropout: Float = 0, targets: [String], seed: UInt64,
                rsLoRA: Bool = false) throws {
        guard rank > 0 else { throw InputError("lora", "rank r must be positive, not \(rank)") }
        self.rsLoRA = rsLoRA
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targets = targets
        var registry = Parameters()
        var modules: [String] = []
        var random = SplitMix(seed: seed)
        for (module, linear) in weights.linears where Self.matches(module, targets) {
            // A rank past the smaller side adds nothing a full update would not, and sizes A and B by it.
            let largest = min(linear.inFeatures, linear.outFeatures)
            guard rank <= largest else {
                throw InputError("lora", "rank r must be at most \(largest) for \(module), not \(rank)")
            }
            let a = registry.make("\(module).lora_A.weight", [rank, linear.inFeatures])
            let b = registry.make("\(module).lora_B.weight", [linear.outFeatures, rank])
            let bound = 1 / Float(linear.inFeatures).squareRoot()
            for i in 0..<a.value.count { a.value[i] = Float.random(in: -bound...bound, using: &random) }
            linear.lowRank = LowRankUpdate(a: a, b: b, scale: rsLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank),
                                          dropoutRate: dropout)
            modules.append(module)
        }
        guard !modules.isEmpty else {
            throw InputError("lora", "target modules \(targets) match no linear layer of the model")
        }
        self.modules = modules
        parameters = registry.all
    }

    /// PEFT's rule: a module matches a target when the names are equal or the module ends with `.target`.
    static func matches(_ module: String, _ targets: [String]) -> Bool {
        targets.contains { module == $0 || module.hasSuffix("." + $0) }
    }
}
