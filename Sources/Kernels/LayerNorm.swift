/// LayerNorm over the last dimension: out = (x - mean) · rstd · weight + bias.
/// Saves each row's mean and reciprocal standard deviation for the backward pass.
/// - Parameters: out, inp (rows, channels); mean, rstd (rows); weight, bias (channels).
public func layerNormForward(
    out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
    rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    rows: Int, channels: Int, eps: Float
) {
    let n = Float(channels)
    parallelFor(rows, minimumChunk: 8) { range in for r in range {
        let x = inp + r * channels
        let m = sum(x, count: channels) / n
        let s = 1 / (sumOfSquaredDeviations(x, from: m, count: channels) / n + eps).squareRoot()
        let y = out + r * channels
        for c in 0..<channels { y[c] = (x[c] - m) * s * weight[c] + bias[c] }
        mean[r] = m
        rstd[r] = s
    } }
}

/// LayerNorm backward; accumulates into dinp and, when given, dweight and dbias.
/// - Parameters: dinp, dout, inp (rows, channels); mean, rstd (rows); weight, dweight, dbias (channels).
public func layerNormBackward(
    dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
    dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, channels: Int
) {
    let n = Float(channels)
    parallelFor(rows, minimumChunk: 8) { range in for r in range {
        let x = inp + r * channels, dy = dout + r * channels, dx = dinp + r * channels
        let m = mean[r], s = rstd[r]
        // Two reductions: mean of dnorm and mean of dnorm · norm.
        let (dnormSum, dnormNormSum) = layerNormGradientSums(weight: weight, dout: dy, inp: x, mean: m, rstd: s, count: channels)
        let dnormMean = dnormSum / n, dnormNormMean = dnormNormSum / n
        for c in 0..<channels {
            let norm = (x[c] - m) * s
            dx[c] += (weight[c] * dy[c] - dnormMean - norm * dnormNormMean) * s
        }
    } }
    guard dweight != nil || dbias != nil else { return }
    // Parameter gradients sum over rows: split by channel so threads never share an element.
    // The optionals are unwrapped outside the channel loops so those vectorize.
    parallelFor(channels, minimumChunk: 32) { range in
        for r in 0..<rows {
            let x = inp + r * channels, dy = dout + r * channels
            let m = mean[r], s = rstd[r]
            if let dweight { for c in range { dweight[c] += (x[c] - m) * s * dy[c] } }
            if let dbias { for c in range { dbias[c] += dy[c] } }
        }
    }
}

/// Σ dnorm and Σ dnorm · norm of one row, where dnorm = weight · dout and norm = (inp − mean) · rstd,
/// eight lanes at a time (see Reductions.swift).
@inline(__always)
private func layerNormGradientSums(
    weight: UnsafePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, mean: Float, rstd: Float, count: Int
) -> (Float, Float) {
    var dnormSum = Lanes(), dnormNormSum = Lanes(), c = 0
    let m = Lanes(repeating: mean), s = Lanes(repeating: rstd)
    while c + 8 <= count {
        let dnorm = load(weight, c) * load(dout, c)
        dnormSum += dnorm
        dnormNormSum.addProduct(dnorm, (load(inp, c) - m) * s)
        c += 8
    }
    var (first, second) = (dnormSum.sum(), dnormNormSum.sum())
    while c < count {
        let dnorm = weight[c] * dout[c]
        first += dnorm
        second += dnorm * (inp[c] - mean) * rstd
        c += 1
    }
    return (first, second)
}
