import Foundation
import Kernels

/// Progress on standard error: a bar redrawn in place on a terminal, plain log lines otherwise.
public final class Progress {
    private let total: Int
    private let label: String
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private let start = ContinuousClock.now
    private let quiet: Bool
    private let first: Int
    private let unit: String

    /// A `quiet` progress prints nothing (ranks other than 0); `from` is the step a resumed run
    /// starts at, so the time left comes from this attempt's pace; `unit` names what is counted.
    public init(total: Int, label: String, quiet: Bool = false, from first: Int = 0, unit: String = "step") {
        self.unit = unit
        self.total = total
        self.label = label
        self.quiet = quiet
        self.first = first
    }

    /// Reports `done` of `total` steps with a status such as "loss 0.41 · 1,200 tok/s".
    public func update(_ done: Int, status: String, force: Bool = false) {
        let elapsed = (ContinuousClock.now - start).seconds
        let remaining = done > first ? elapsed / Double(done - first) * Double(total - done) : 0
        let eta = String(format: "%d:%02d", Int(remaining) / 60, Int(remaining) % 60)
        if isTerminal {
            let width = 24, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            write("\r\(label) [\(bar)] \(done)/\(total) · \(status) · \(eta) left\u{1B}[K")
        } else if force {
            write("\(label) \(unit) \(done)/\(total) · \(status) · \(eta) left\n")
        }
    }

    /// Prints a line of its own (an evaluation result), after the label, keeping the bar below it.
    public func log(_ line: String) {
        write(isTerminal ? "\r\u{1B}[K\(label): \(line)\n" : "\(label): \(line)\n")
    }

    public func finish() { if isTerminal { write("\n") } }

    private func write(_ text: String) { if !quiet { FileHandle.standardError.write(Data(text.utf8)) } }
}

