import Distributed
import Foundation

/// SIGINT, SIGTERM and SIGUSR1 ask a training run to stop cleanly: the handler only records the
/// signal; the training loop looks after each step, every rank agreeing (one all-reduce), then
/// writes a checkpoint and ends with `TrainingInterrupted`. A second signal ends the process at once.
///
/// Under mpirun: SIGTERM or SIGINT to mpirun reach the ranks as SIGTERM, and mpirun kills them one
/// second later, enough for a small model's step and checkpoint; SIGUSR1 to mpirun is forwarded
/// as it is, with no kill after it, so a step of any length finishes.
public enum StopRequest {
    nonisolated(unsafe) private static var received: sig_atomic_t = 0
    nonisolated(unsafe) private static var installed = false

    static let handled = [SIGTERM, SIGINT, SIGUSR1]

    /// Installs the handlers (once per process).
    public static func install() {
        guard !installed else { return }
        installed = true
        for signalNumber in handled {
            signal(signalNumber) { number in
                if StopRequest.received != 0 {
                    signal(number, SIG_DFL)
                    raise(number)
                }
                StopRequest.received = number
            }
        }
    }

    /// The signal one of the ranks received (0: none), the same answer on every rank.
    static func agreed(_ communicator: Communicator) -> Int32 {
        // How many ranks saw each signal; the first in `handled` wins when several were seen.
        var seen = handled.map { received == $0 ? 1.0 : 0 }
        if communicator.size > 1 { communicator.allReduceSum(&seen) }
        return seen.firstIndex { $0 > 0 }.map { handled[$0] } ?? 0
    }
}

/// A run stopped by a signal after writing its checkpoint: `--resume` continues it.
public struct TrainingInterrupted: Error, CustomStringConvertible {
    public let signal: Int32
    public let step: Int
    public let folder: String

    public var description: String {
        "\([SIGINT: "SIGINT", SIGTERM: "SIGTERM"][signal] ?? "SIGUSR1") at step \(step): checkpoint written to \(folder); "
            + "continue with --resume"
    }

    /// The exit status a shell expects of a process ended by this signal.
    public var exitStatus: Int32 { 128 + signal }
}

/// A run whose loss or gradient stopped being a finite number.
public struct TrainingDiverged: Error, CustomStringConvertible {
    public let step: Int
    public let what: String
    public let lastCheckpoint: Int
    /// The options that may help.
    var advice = "a lower --lr or --max-grad-norm"

    public var description: String {
        "diverged at step \(step): \(what) is not a finite number; "
            + (lastCheckpoint > 0 ? "the checkpoint of step \(lastCheckpoint) and the best adapter are kept" : "nothing was kept")
            + " (\(advice) may help)"
    }
}
