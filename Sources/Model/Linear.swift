import Kernels

/// A low-rank update of a linear layer (LoRA): y += scale · dropout(x) · Aᵀ · Bᵀ,
/// A (rank, in), B (out, rank). Saves x·Aᵀ for the backward pass.
public final class LowRankUpdate {
    public let a: Parameter, b: Parameter
    public let scale: Float
    public let dropoutRate: Float
    public var rank: Int { a.shape[0] }
    /// (rows, rank) x·Aᵀ of the last forward pass.
    private var projected = Tensor(shape: [0])
    /// (rows, in) the dropped input of the last forward pass, kept only with dropout.
    private var droppedInput = Tensor(shape: [0])
    private var gradientScratch = Tensor(shape: [0])
    private var droppedInputGradient = Tensor(shape: [0])

    public init(a: Parameter, b: Parameter, scale: Float, dropoutRate: Float = 0) {
        self.a = a
        self.b = b
        self.scale = scale
        self.dropoutRate = dropoutRate
    }

    /// out (rows, out) += scale · dropout(inp) · Aᵀ · Bᵀ; `masks` (training only) is the site's
    /// source of per-sequence masks, used at this update's own rate.
    func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int, masks: SequenceDropout?) {
        let dropout = masks?.rate(dropoutRate)
        let (inF, outF, r) = (a.shape[1], b.shape[0], rank)
        if projected.count < rows * r { projected = Tensor(shape: [rows, r]) }
        var source = inp
        if let dropout {
            if droppedInput.count < rows * inF { droppedInput = Tensor(shape: [rows, inF]) }
            dropout.forward(out: droppedInput.data, inp: inp, elementsPerSequence: rows / dropout.keys.count * inF)
            source = UnsafePointer(droppedInput.data)
        }
        linearForward(out: projected.data, inp: source, weight: a.value.elements, bias: nil,
                      rows: rows, inFeatures: inF, outFeatures: r)
        gemm(transA: false, transB: true, m: rows, n: outF, k: r, alpha: scale,
             a: projected.data, lda: r, b: b.value.data, ldb: r, beta: 1, c: out, ldc: outF)
    }

    /// Accumulates into dA, dB (when trainable) and dinp (when given).
    func backward(dinp: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                  rows: Int, masks: SequenceDropout?) {
        let (inF, outF, r) = (a.shape[1], b.shape[0], rank)
        let dropout = masks?.rate(dropoutRate)
        let source = dropout != nil ? UnsafePointer(droppedInput.data) : inp
        // dB (out, r) += scale · doutᵀ · projected
        if let dB = b.gradient {
            gemm(transA: true, transB: false, m: outF, n: r, k: rows, alpha: scale,
                 a: dout, lda: outF, b: projected.data, ldb: r, beta: 1, c: dB.data, ldc: r)
        }
        guard a.isTrainable || dinp != nil else { return }
        // dprojected (rows, r) = scale · dout · B
        if gradientScratch.count < rows * r { gradientScratch = Tensor(shape: [rows, r]) }
        let dProjected = gradientScratch.data
        gemm(transA: false, transB: false, m: rows, n: r, k: outF, alpha: scale,
             a: dout, lda: outF, b: b.value.data, ldb: r, beta: 0, c: dProjected, ldc: r)
        if let dinp, let dropout {
            // Through A into the dropped input, then back through the dropout mask.
            if droppedInputGradient.count < rows * inF { droppedInputGradient = Tensor(shape: [rows, inF]) }
            let dDropped = droppedInputGradient
            dDropped.zero(first: rows * inF)
            linearBackward(dinp: dDropped.data, dweight: a.gradient?.data, dbias: nil, dout: dProjected,
                           inp: source, weight: a.value.elements, rows: rows, inFeatures: inF, outFeatures: r)
            dropout.backward(dinp: dinp, dout: dDropped.data, elementsPerSequence: rows / dropout.keys.count * inF)
        } else {
            linearBackward(dinp: dinp, dweight: a.gradient?.data, dbias: nil, dout: dProjected,
                           inp: source, weight: a.value.elements, rows: rows, inFeatures: inF, outFeatures: r)
        }
    }

    /// W (out, in) += sign · scale · B · A: merges the update into the frozen weight (or, with -1, takes it out).
    func apply(to weight: Tensor, sign: Float) {
        let (inF, outF, r) = (a.shape[1], b.shape[0], rank)
        gemm(transA: false, transB: false, m: outF, n: inF, k: r, alpha: sign * scale,
             a: b.value.data, lda: r, b: a.value.data, ldb: inF, beta: 1, c: weight.data, ldc: inF)
    }
}

/// IA3's learned rescaling of a linear layer: of its input features for a feed-forward layer,
/// y = W·(x ⊙ l) + b with l (1, in), or of its outputs otherwise, y = (W·x + b) ⊙ l with l (out, 1).
public final class FeatureScaling {
    public let vector: Parameter
    public let scalesInput: Bool
    /// The last forward pass's scaled input (rows, in), or unscaled output (rows, out).
    private var saved = Tensor(shape: [0])
    private var scratch = Tensor(shape: [0])

    public init(vector: Parameter, scalesInput: Bool) {
        self.vector = vector
        self.scalesInput = scalesInput
    }

    /// out (rows, out) = the scaled layer's output.
    func forward(_ linear: Linear, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int) {
        let (inF, outF) = (linear.inFeatures, linear.outFeatures)
        if scalesInput {
            if saved.count < rows * inF { saved = Tensor(shape: [rows, inF]) }
            scaleChannelsForward(out: saved.data, inp: inp, scale: vector.value.data, rows: rows, channels: inF)
            linearForward(out: out, inp: saved.data, weight: linear.weight.elements, bias: linear.bias.value.data,
                          rows: rows, inFeatures: inF, outFeatures: outF)
        } else {
            if saved.count < rows * outF { saved = Tensor(shape: [rows, outF]) }
            linearForward(out: saved.data, inp: inp, weight: linear.weight.elements, bias: linear.bias.value.data,
                          rows: rows, inFeatures: inF, outFeatures: outF)
            scaleChannelsForward(out: out, inp: saved.data, scale: vector.value.data, rows: rows, channels: outF)
        }
    }

    /// Accumulates into dl, the layer's trainable gradients and, when given, dinp.
    func backward(_ linear: Linear, dinp: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                  inp: UnsafePointer<Float>, rows: Int) {
        let (inF, outF) = (linear.inFeatures, linear.outFeatures)
        let (weight, bias) = (linear.weight, linear.bias)
        if scalesInput {
            // d(x ⊙ l) = dout · W, then dl += Σ x ⊙ d(x ⊙ l) and dinp += l ⊙ d(x ⊙ l).
            if scratch.count < rows * inF { scratch = Tensor(shape: [rows, inF]) }
            scratch.zero(first: rows * inF)
            linearBackward(dinp: scratch.data, dweight: weight.gradient?.data, dbias: bias.gradient?.data, dout: dout,
                           inp: saved.data, weight: weight.elements, rows: rows, inFeatures: inF, outFeatures: outF)
            scaleChannelsBackward(dinp: dinp, dscale: vector.gradient?.data, dout: scratch.data, inp: inp,
                                  scale: vector.value.data, rows: rows, channels: inF, accumulate: true)
        } else {
            // dl += Σ dout ⊙ (W·x + b); the layer's own gradient is dout ⊙ l.
            if scratch.count < rows * outF { scratch = Tensor(shape: [rows, outF]) }
            scaleChannelsBackward(dinp: scratch.data, dscale: vector.gradient?.data, dout: dout, inp: saved.data,
                                  scale: vector.value.data, rows: rows, channels: outF, accumulate: false)
            linearBackward(dinp: dinp, dweight: weight.gradient?.data, dbias: bias.gradient?.data, dout: scratch.data,
                           inp: inp, weight: weight.elements, rows: rows, inFeatures: inF, outFeatures: outF)
        }
    }
}

/// A linear layer in PyTorch's layout, weight (out, in) and bias (out), with an
/// optional low-rank update; computes gradients only for what is trainable.
public final class Linear {
    public let weight: Parameter
    public let bias: Parameter
    /// The LoRA update, when one is attached; nil after merging.
    public var lowRank: LowRankUpdate?
    public private(set) var merged: LowRankUpdate?
    /// IA3's rescaling, when attached (never together with a low-rank update).
    public var scaling: FeatureScaling?
    /// Adaptations that differ by sequence (a batch mixing tasks, in prediction), instead of the two above.
    public var perSequence: SequenceAdaptations?
    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// Registers `prefix.weight` and `prefix.bias` in `parameters`.
    public init(_ prefix: String, inFeatures: Int, outFeatures: Int, in parameters: inout Parameters) {
        weight = parameters.make("\(prefix).weight", [outFeatures, inFeatures])
        bias = parameters.make("\(prefix).bias", [outFeatures])
    }

    /// Whether a backward pass through this layer produces any parameter gradient.
    public var hasTrainable: Bool {
        weight.isTrainable || bias.isTrainable || (lowRank.map { $0.a.isTrainable || $0.b.isTrainable } ?? false)
            || (scaling?.vector.isTrainable ?? false)
    }

    /// out (rows, out) = inp (rows, in) · Wᵀ + b [+ LoRA] (or IA3's scaled product); `masks` (training only)
    /// is where LoRA's dropout masks come from. `sequences`: the batch's sequences the rows belong to,
    /// in equal shares, which per-sequence adaptations need.
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int,
                        masks: SequenceDropout? = nil, sequences: Range<Int>? = nil) {
        if let scaling { return scaling.forward(self, out: out, inp: inp, rows: rows) }
        linearForward(out: out, inp: inp, weight: weight.elements, bias: bias.value.data,
                      rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
        lowRank?.forward(out: out, inp: inp, rows: rows, masks: masks)
        guard let perSequence else { return }
        guard let sequences, !sequences.isEmpty, rows % sequences.count == 0 else {
            preconditionFailure("per-sequence adaptations need the rows' sequences")
        }
        let rowsPerSequence = rows / sequences.count
        for part in perSequence.parts {
            let overlap = part.sequences.clamped(to: sequences)
            guard !overlap.isEmpty else { continue }
            let first = (overlap.lowerBound - sequences.lowerBound) * rowsPerSequence, count = overlap.count * rowsPerSequence
            let (partOut, partInp) = (out + first * outFeatures, inp + first * inFeatures)
            switch part.adaptation {
            case .lowRank(let update): update.forward(out: partOut, inp: partInp, rows: count, masks: nil)
            case .scaling(let scaling): scaling.forward(self, out: partOut, inp: partInp, rows: count)
            }
        }
    }

    /// Whether the bfloat16-input `forward` and `backward` apply: at bf16, a layer without
    /// adaptations (they read float32 input).
    public var takesBFloat16Input: Bool {
        MatrixEngine.precision == .bf16 && lowRank == nil && scaling == nil && perSequence == nil
    }

    /// out (rows, out) = inp · Wᵀ + b over an input already rounded to bfloat16 (see `takesBFloat16Input`);
    /// a backward then needs the same input, in bfloat16 too.
    public func forward(out: UnsafeMutablePointer<Float>, bfloat16Input inp: UnsafePointer<UInt16>, rows: Int) {
        precondition(takesBFloat16Input, "a bfloat16 input for a layer that reads float32")
        linearForward(out: out, inp: .bfloat16(inp), weight: weight.elements, bias: bias.value.data,
                      rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
    }

    /// `backward` over the forward's input rounded to bfloat16 (see `takesBFloat16Input`).
    public func backward(dinp: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                         bfloat16Input inp: UnsafePointer<UInt16>, rows: Int) {
        precondition(takesBFloat16Input, "a bfloat16 input for a layer that reads float32")
        linearBackward(dinp: dinp, dweight: weight.gradient?.data, dbias: bias.gradient?.data, dout: dout,
                       inp: .bfloat16(inp), weight: weight.elements, rows: rows, inFeatures: inFeatures,
                       outFeatures: outFeatures)
    }

    /// Accumulates into the trainable gradients and, when given, dinp.
    public func backward(dinp: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                         rows: Int, masks: SequenceDropout? = nil) {
        if let scaling { return scaling.backward(self, dinp: dinp, dout: dout, inp: inp, rows: rows) }
        // The layer's products and LoRA's read dout from one bfloat16 copy.
        MatrixEngine.sharingRounding(of: dout, count: rows * outFeatures) {
            linearBackward(dinp: dinp, dweight: weight.gradient?.data, dbias: bias.gradient?.data, dout: dout, inp: inp,
                           weight: weight.elements, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
            lowRank?.backward(dinp: dinp, dout: dout, inp: inp, rows: rows, masks: masks)
        }
    }

    /// Folds the LoRA update into the weight, so inference costs nothing extra.
    public func merge() {
        guard let update = lowRank else { return }
        update.apply(to: weight.value, sign: 1)
        merged = update
        lowRank = nil
    }

    /// Takes a merged update back out of the weight.
    public func unmerge() {
        guard let update = merged else { return }
        update.apply(to: weight.value, sign: -1)
        lowRank = update
        merged = nil
    }
}

/// The low-rank updates and rescalings of one linear layer in a batch whose sequences belong to
/// different adapters: each part's range of sequences gets its adaptation, the rest the plain layer.
public struct SequenceAdaptations {
    public enum Adaptation {
        case lowRank(LowRankUpdate)
        case scaling(FeatureScaling)
    }

    public var parts: [(sequences: Range<Int>, adaptation: Adaptation)] = []

    public init() {}
}

/// A LayerNorm's scale and shift, registered as `prefix.weight` and `prefix.bias`.
public final class LayerNorm {
    public let weight: Parameter
    public let bias: Parameter
    public let eps: Float

    public init(_ prefix: String, channels: Int, eps: Float, in parameters: inout Parameters) {
        weight = parameters.make("\(prefix).weight", [channels])
        bias = parameters.make("\(prefix).bias", [channels])
        self.eps = eps
        weight.value.buffer.update(repeating: 1)
    }

    public var hasTrainable: Bool { weight.isTrainable || bias.isTrainable }

    func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                 inp: UnsafePointer<Float>, rows: Int) {
        layerNormForward(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight.value.data, bias: bias.value.data,
                         rows: rows, channels: weight.shape[0], eps: eps)
    }

    func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                  mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int) {
        layerNormBackward(dinp: dinp, dweight: weight.gradient?.data, dbias: bias.gradient?.data, dout: dout, inp: inp,
                          weight: weight.value.data, mean: mean, rstd: rstd, rows: rows, channels: weight.shape[0])
    }
}
