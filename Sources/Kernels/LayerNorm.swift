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
        var sum: Float = 0
        for c in 0..<channels { sum += x[c] }
        let m = sum / n
        var variance: Float = 0
        for c in 0..<channels { let d = x[c] - m; variance += d * d }
        let s = 1 / (variance / n + eps).squareRoot()
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
        var dnormMean: Float = 0, dnormNormMean: Float = 0
        for c in 0..<channels {
            let norm = (x[c] - m) * s
            let dnorm = weight[c] * dy[c]
            dnormMean += dnorm
            dnormNormMean += dnorm * norm
        }
        dnormMean /= n
        dnormNormMean /= n
        for c in 0..<channels {
            let norm = (x[c] - m) * s
            dx[c] += (weight[c] * dy[c] - dnormMean - norm * dnormNormMean) * s
        }
    } }
    guard dweight != nil || dbias != nil else { return }
    // Parameter gradients sum over rows: split by channel so threads never share an element.
    parallelFor(channels, minimumChunk: 32) { range in
        for r in 0..<rows {
            let x = inp + r * channels, dy = dout + r * channels
            let m = mean[r], s = rstd[r]
            for c in range {
                dweight?[c] += (x[c] - m) * s * dy[c]
                dbias?[c] += dy[c]
            }
        }
    }
}
