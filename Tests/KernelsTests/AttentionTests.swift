import Kernels
import TestSupport
import XCTest

final class AttentionTests: XCTestCase {
    /// Two sequences, three queries, five keys (two of them prompt positions in front), two heads,
    /// and a padded key in the second sequence.
    private func check(dropout: SequenceDropout?, line: UInt = #line) {
        let shape = AttentionShape(batch: 2, queries: 3, keys: 5, channels: 4, heads: 2)
        var random = SeededRandom(seed: 12)
        let q = random.tensor([2, 3, 4]), k = random.tensor([2, 5, 4]), v = random.tensor([2, 5, 4])
        let keyMask = Tensor(shape: [2, 5], values: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
        let out = Tensor(shape: [2, 3, 4]), probs = Tensor(shape: [shape.probabilityCount])
        let forwardScratch = Tensor(shape: [shape.forwardScratchCount])
        let forward = {
            attentionForward(out: out.data, probs: probs.data, q: q.data, k: k.data, v: v.data,
                             keyMask: keyMask.data, shape: shape, dropout: dropout, scratch: forwardScratch.data)
        }
        forward()
        for row in 0..<(2 * 2 * 3) where row >= 6 {
            XCTAssertEqual(probs[row * 5 + 4], 0, "padded key gets no attention", line: line)
        }
        let dout = random.tensor([2, 3, 4])
        let dq = Tensor(shape: [2, 3, 4]), dk = Tensor(shape: [2, 5, 4]), dv = Tensor(shape: [2, 5, 4])
        let scratch = Tensor(shape: [shape.scratchCount])
        attentionBackward(dq: dq.data, dk: dk.data, dv: dv.data, dout: dout.data, probs: probs.data,
                          q: q.data, k: k.data, v: v.data, scratch: scratch.data,
                          shape: shape, dropout: dropout)
        let loss = { forward(); return weightedSum(out.data, dout) }
        checkGradient("attention q", input: q, analytic: dq, epsilon: 1e-3, line: line, loss: loss)
        checkGradient("attention k", input: k, analytic: dk, epsilon: 1e-3, line: line, loss: loss)
        checkGradient("attention v", input: v, analytic: dv, epsilon: 1e-3, line: line, loss: loss)
    }

    func testAttentionBackwardMatchesFiniteDifferences() { check(dropout: nil) }

    func testAttentionWithDropoutBackwardMatchesFiniteDifferences() { check(dropout: SequenceDropout(rate: 0.3, seed: 5, keys: [7, 3])) }
}
