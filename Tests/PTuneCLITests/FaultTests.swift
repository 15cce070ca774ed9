import Foundation
import Model
import TestSupport
import XCTest

/// Signals and kills in the middle of `ptune train`: the run stops with a checkpoint (or keeps its
/// last one) and `--resume` finishes it.
final class FaultTests: XCTestCase {
    private func trainArguments(_ task: String, out: String) throws -> [String] {
        ["train", "--model", try pretrainedModelFolder(), "--task", task + "/mood.json", "--method", "lora",
         "--max-steps", "40", "--batch-size", "4", "--eval-every", "100", "--log-every", "1", "--out", out]
    }

    private func summarySteps(_ out: String) throws -> Int? {
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["steps"] as? Int
    }

    func testSIGTERMWritesACheckpointAndResumeFinishes() throws {
        let task = try moodTask(self), out = task + "/run", errors = task + "/err.txt"
        let process = try startProcess(try ptunePath(), try trainArguments(task, out: out), errorPath: errors)
        waitWhileRunning(process) { ((try? TextFile.lines(atPath: out + "/metrics.jsonl"))?.count ?? 0) >= 2 }
        process.terminate()   // SIGTERM
        process.waitUntilExit()
        let message = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        XCTAssertEqual(process.terminationReason, .exit, message)
        XCTAssertEqual(process.terminationStatus, 128 + SIGTERM, message)
        XCTAssert(message.contains("stopped: SIGTERM at step"), message)
        XCTAssert(FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors"))
        let resumed = try runProduct("ptune", ["train", "--resume", out])
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        XCTAssertEqual(try summarySteps(out), 40)
    }

    /// kill -9 after a `--checkpoint-every` checkpoint and before any evaluation: the resumed run
    /// starts from that checkpoint, and the dead writer's temporary files are removed.
    func testAKilledRunResumesBeforeItsFirstEvaluation() throws {
        let task = try moodTask(self), out = task + "/run", errors = task + "/err.txt"
        let process = try startProcess(try ptunePath(), try trainArguments(task, out: out) + ["--checkpoint-every", "3"],
                                       errorPath: errors)
        waitWhileRunning(process) { FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors") }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        let leftover = out + "/.checkpoint.safetensors.tmp-999999"
        FileManager.default.createFile(atPath: leftover, contents: Data(count: 1024))
        // A line another program damaged (invalid UTF-8) is kept, not the whole file lost.
        let damaged = Data([0x7B, 0xFF, 0xFE, 0x7D, 0x0A])
        let metrics = try FileHandle(forWritingTo: URL(fileURLWithPath: out + "/metrics.jsonl"))
        try metrics.seekToEnd()
        try metrics.write(contentsOf: damaged)
        try metrics.close()
        let resumed = try runProduct("ptune", ["train", "--resume", out])
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        XCTAssertEqual(try summarySteps(out), 40)
        XCTAssertFalse(resumed.standardError.contains("trainable parameters"), "starts from the checkpoint, not step 0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: leftover), "a dead writer's temporary file is removed")
        let kept = try Data(contentsOf: URL(fileURLWithPath: out + "/metrics.jsonl"))
        XCTAssertNotNil(kept.range(of: damaged), "the damaged line survives the resume")
        XCTAssertGreaterThan(kept.count, 40 * damaged.count, "and so do the others")
    }
}
