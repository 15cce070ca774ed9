#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Kernels
import Model

/// AdamW with decoupled weight decay (Loshchilov & Hutter), as `torch.optim.AdamW`:
/// p ← p − lr·wd·p − lr·m̂/(√v̂ + ε). No decay on biases, LayerNorm weights and prompts.
/// Moments exist only for the trainable parameters it is given; each parameter counts its own
/// updates (for bias correction), so one a step leaves out (another task's head) is untouched,
/// as PyTorch leaves a parameter whose gradient is None.
public final class AdamW {
    public let parameters: [Parameter]
    public var beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
    public var weightDecay: Float
    private let first: [Tensor], second: [Tensor]
    private var steps: [Int]
    private let decays: [Bool]
    private let indices: [ObjectIdentifier: Int]

    public init(parameters: [Parameter], weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.weightDecay = weightDecay
        first = parameters.map { Tensor(shape: $0.shape) }
        second = parameters.map { Tensor(shape: $0.shape) }
        steps = parameters.map { _ in 0 }
        decays = parameters.map { AdamW.decays($0.name) }
        indices = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })
    }

    /// Whether a parameter gets weight decay: not biases, LayerNorm weights or prompt vectors.
    public static func decays(_ name: String) -> Bool {
        !(name.contains("bias") || name.contains("LayerNorm") || name.hasPrefix("prompt_encoder.embedding"))
    }

    /// One update with learning rate `lr` from the current gradients of `only` (default: every
    /// parameter), each multiplied by `gradientScale` as it is read (gradient clipping's factor,
    /// applied here rather than in a pass of its own over the gradients).
    public func update(lr: Float, gradientScale: Float = 1, only subset: [Parameter]? = nil) {
        for parameter in subset ?? parameters {
            guard let index = indices[ObjectIdentifier(parameter)], let gradient = parameter.gradient else { continue }
            steps[index] += 1
            let correction1 = 1 - powf(beta1, Float(steps[index])), correction2 = 1 - powf(beta2, Float(steps[index]))
            let p = parameter.value.data, g = gradient.data, m = first[index].data, v = second[index].data
            let decay = decays[index] ? 1 - lr * weightDecay : 1
            // As PyTorch: p ← p·decay − (lr / c1) · m / (√v / √c2 + ε).
            let (beta1, beta2, epsilon) = (beta1, beta2, epsilon)
            let stepSize = lr / correction1, rootCorrection2 = correction2.squareRoot()
            parallelFor(parameter.value.count, minimumChunk: 1 << 14) { range in
                for i in range {
                    let gi = g[i] * gradientScale
                    m[i] = beta1 * m[i] + (1 - beta1) * gi
                    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
                    p[i] = p[i] * decay - stepSize * m[i] / (v[i].squareRoot() / rootCorrection2 + epsilon)
                }
            }
        }
    }

    /// The moments and update counts, named for a checkpoint (`adam.m.NAME`, `adam.v.NAME`, `adam.step.NAME`).
    public var state: [(name: String, tensor: Tensor)] {
        parameters.indices.flatMap {
            [("adam.m." + parameters[$0].name, first[$0]), ("adam.v." + parameters[$0].name, second[$0]),
             ("adam.step." + parameters[$0].name, Tensor(shape: [1], values: [Float(steps[$0])]))]
        }
    }

    /// Restores the moments and update counts from a checkpoint's state.
    public func restore(state: [String: Tensor]) throws {
        for (index, parameter) in parameters.enumerated() {
            for (prefix, tensor) in [("adam.m.", first[index]), ("adam.v.", second[index])] {
                guard let stored = state[prefix + parameter.name], stored.count == tensor.count else {
                    throw InputError("checkpoint", "no optimizer state '\(prefix + parameter.name)' of the right size")
                }
                tensor.copy(from: stored)
            }
            guard let count = state["adam.step." + parameter.name] else {
                throw InputError("checkpoint", "no optimizer state 'adam.step.\(parameter.name)'")
            }
            steps[index] = Int(count[0])
        }
    }
}

/// Gradient clipping by global L2 norm, as `torch.nn.utils.clip_grad_norm_`: the factor
/// (at most 1) that brings the norm of every trainable gradient together to at most `maxNorm`
/// (no limit when `maxNorm` ≤ 0), and the norm before. Pass the factor to `AdamW.update`.
public func gradientClipping(_ parameters: [Parameter], maxNorm: Float) -> (factor: Float, norm: Float) {
    var sum: Double = 0
    for parameter in parameters {
        guard let g = parameter.gradient else { continue }
        sum += squaredNorm(g.data, count: g.count)
    }
    let norm = Float(sum.squareRoot())
    return (maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1, norm)
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`
/// (transformers' `get_linear_schedule_with_warmup`). `step` counts from 0.
public func linearSchedule(step: Int, total: Int, warmup: Int, peak: Float) -> Float {
    if step < warmup { return peak * Float(step + 1) / Float(max(warmup, 1)) }
    return peak * max(0, Float(total - step) / Float(max(total - warmup, 1)))
}
