#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sizes of one LSTM direction over one sequence: `steps` inputs of `inputSize`, `hiddenSize` units.
public struct LSTMShape: Sendable {
    public let steps: Int, inputSize: Int, hiddenSize: Int
    public init(steps: Int, inputSize: Int, hiddenSize: Int) {
        self.steps = steps
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
    }
    /// Floats of the saved gates: (steps, 4·hidden).
    public var gateCount: Int { steps * 4 * hiddenSize }
}

/// One direction of a PyTorch LSTM layer (gate order i, f, g, o; zero initial state):
/// c_t = f·c_{t−1} + i·g, h_t = o·tanh(c_t). `reverse` runs from the last step to the first
/// (PyTorch's `_reverse` weights); outputs stay in input order.
/// - Parameters: input (steps, in); weightIH (4H, in), weightHH (4H, H), biasIH, biasHH (4H);
///   output (steps, H) written with `outputStride` between rows (to interleave two directions);
///   gates (steps, 4H) and cells (steps, H) saved for the backward pass.
public func lstmForward(
    output: UnsafeMutablePointer<Float>, outputStride: Int, gates: UnsafeMutablePointer<Float>,
    cells: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    weightIH: UnsafePointer<Float>, weightHH: UnsafePointer<Float>,
    biasIH: UnsafePointer<Float>, biasHH: UnsafePointer<Float>, shape: LSTMShape, reverse: Bool
) {
    let (T, H) = (shape.steps, shape.hiddenSize)
    // Input contributions of every step at once: gates (T, 4H) = input · W_ihᵀ + b_ih + b_hh.
    linearForward(out: gates, inp: input, weight: .float32(weightIH), bias: biasIH, rows: T, inFeatures: shape.inputSize,
                  outFeatures: 4 * H)
    biasAddForward(gates, bias: biasHH, rows: T, channels: 4 * H)
    var previous: Int? = nil
    for step in 0..<T {
        let t = reverse ? T - 1 - step : step
        let g = gates + t * 4 * H
        if let p = previous {
            // g += h_{t−1} · W_hhᵀ
            gemm(transA: false, transB: true, m: 1, n: 4 * H, k: H, a: output + p * outputStride, lda: H,
                 b: weightHH, ldb: H, beta: 1, c: g, ldc: 4 * H)
        }
        for u in 0..<H {
            let i = sigmoid(g[u]), f = sigmoid(g[H + u]), cand = tanhf(g[2 * H + u]), o = sigmoid(g[3 * H + u])
            let c = i * cand + (previous.map { f * cells[$0 * H + u] } ?? 0)
            g[u] = i; g[H + u] = f; g[2 * H + u] = cand; g[3 * H + u] = o
            cells[t * H + u] = c
            output[t * outputStride + u] = o * tanhf(c)
        }
        previous = t
    }
}

/// LSTM backward for one direction; accumulates into dinput (steps, in) when given and into the
/// weight and bias gradients. `scratch` holds steps · 4H + 2H floats.
public func lstmBackward(
    dinput: UnsafeMutablePointer<Float>?, dweightIH: UnsafeMutablePointer<Float>,
    dweightHH: UnsafeMutablePointer<Float>, dbiasIH: UnsafeMutablePointer<Float>, dbiasHH: UnsafeMutablePointer<Float>,
    doutput: UnsafePointer<Float>, outputStride: Int, output: UnsafePointer<Float>,
    gates: UnsafePointer<Float>, cells: UnsafePointer<Float>, input: UnsafePointer<Float>,
    weightIH: UnsafePointer<Float>, weightHH: UnsafePointer<Float>,
    scratch: UnsafeMutablePointer<Float>, shape: LSTMShape, reverse: Bool
) {
    let (T, H, I) = (shape.steps, shape.hiddenSize, shape.inputSize)
    let dgates = scratch, dh = scratch + T * 4 * H, dc = dh + H
    dh.update(repeating: 0, count: H)
    dc.update(repeating: 0, count: H)
    for step in 0..<T {
        // Walk back in processing order: the last step processed comes first.
        let t = reverse ? step : T - 1 - step
        let previous: Int? = reverse ? (t + 1 < T ? t + 1 : nil) : (t > 0 ? t - 1 : nil)
        let g = gates + t * 4 * H, d = dgates + t * 4 * H
        for u in 0..<H {
            let (i, f, cand, o) = (g[u], g[H + u], g[2 * H + u], g[3 * H + u])
            let c = cells[t * H + u], tc = tanhf(c)
            let dhu = dh[u] + doutput[t * outputStride + u]
            let dcu = dc[u] + dhu * o * (1 - tc * tc)
            let cPrevious = previous.map { cells[$0 * H + u] } ?? 0
            d[u] = dcu * cand * i * (1 - i)
            d[H + u] = dcu * cPrevious * f * (1 - f)
            d[2 * H + u] = dcu * i * (1 - cand * cand)
            d[3 * H + u] = dhu * tc * o * (1 - o)
            dc[u] = dcu * f
        }
        // dh_{t−1} = dgates_t · W_hh; dW_hh += dgates_tᵀ · h_{t−1}
        if let p = previous {
            gemm(transA: false, transB: false, m: 1, n: H, k: 4 * H, a: d, lda: 4 * H, b: weightHH, ldb: H,
                 beta: 0, c: dh, ldc: H)
            gemm(transA: true, transB: false, m: 4 * H, n: H, k: 1, a: d, lda: 4 * H, b: output + p * outputStride,
                 ldb: H, beta: 1, c: dweightHH, ldc: H)
        } else {
            dh.update(repeating: 0, count: H)
        }
    }
    biasAddBackward(dbias: dbiasIH, dout: dgates, rows: T, channels: 4 * H)
    biasAddBackward(dbias: dbiasHH, dout: dgates, rows: T, channels: 4 * H)
    linearBackward(dinp: dinput, dweight: dweightIH, dbias: nil, dout: dgates, inp: input, weight: .float32(weightIH),
                   rows: T, inFeatures: I, outFeatures: 4 * H)
}

@inline(__always)
private func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
