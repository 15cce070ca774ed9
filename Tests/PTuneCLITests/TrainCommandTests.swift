import Foundation
import Model
import TestSupport
import XCTest

/// `ptune train`, `ptune eval` and `ptune train --resume` from the command line.
final class TrainCommandTests: XCTestCase {
    func testTrainThenEvalAndResumeAFinishedRun() throws {
        let folder = try moodTask(self)
        let model = try pretrainedModelFolder()
        let train = try runProduct("ptune", ["train", "--model", model, "--task", folder + "/mood.json", "--method", "freeze",
                                             "--freeze-layers", "1", "--max-steps", "4", "--batch-size", "8", "--out", folder + "/run"])
        XCTAssertEqual(train.status, 0, train.standardError)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(train.standardOutput.utf8)) as? [String: Any])
        XCTAssertEqual(summary["steps"] as? Int, 4)

        let eval = try runProduct("ptune", ["eval", "--model", model, "--task", folder + "/mood.json",
                                            "--adapter", folder + "/run/best_adapter", "--json"])
        XCTAssertEqual(eval.status, 0, eval.standardError)
        let scores = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(eval.standardOutput.utf8)) as? [String: Any])
        XCTAssertEqual(scores["examples"] as? Int, 24)
        XCTAssertEqual(((scores["metrics"] as? [String: Double])?["accuracy"]).map { $0 >= 0 && $0 <= 1 }, true)
        XCTAssertEqual(((scores["metrics"] as? [String: Double])?["accuracy"]),
                       ((summary["test"] as? [String: Double])?["accuracy"]), "eval scores what train scored")

        let again = try runProduct("ptune", ["train", "--model", model, "--task", folder + "/mood.json", "--method", "freeze",
                                             "--out", folder + "/run"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssert(again.standardError.contains("already holds a run"), again.standardError)
        let resumed = try runProduct("ptune", ["train", "--out", folder + "/run", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
    }

    func testAResumedRunKeepsThePrecisionItStartedWith() throws {
        let folder = try moodTask(self)
        let train = try runProduct("ptune", ["train", "--model", try pretrainedModelFolder(), "--task", folder + "/mood.json",
                                             "--method", "lora", "--max-steps", "2", "--batch-size", "8",
                                             "--precision", "fp32", "--out", folder + "/run"])
        XCTAssertEqual(train.status, 0, train.standardError)
        XCTAssert(train.standardError.hasPrefix("precision: fp32 (--precision)"), train.standardError)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/run/config.json")))
        XCTAssertEqual((config as? [String: Any])?["precision"] as? String, "fp32")
        let changed = try runProduct("ptune", ["train", "--resume", folder + "/run", "--precision", "bf16"])
        XCTAssertNotEqual(changed.status, 0)
        XCTAssert(changed.standardError.contains("the run started at fp32 precision and keeps it"), changed.standardError)
        let resumed = try runProduct("ptune", ["train", "--resume", folder + "/run"])
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        XCTAssert(resumed.standardError.hasPrefix("precision: fp32 (as the run started)"), resumed.standardError)
    }

    /// oneDNN told to use no more than AVX2 stands in for a processor without bfloat16.
    func testWithoutBFloat16TheDefaultIsFloat32AndBFloat16IsRefused() throws {
        let folder = try moodTask(self), model = try pretrainedModelFolder()
        let noBFloat16 = ["ONEDNN_MAX_CPU_ISA": "AVX2"]
        let refused = try runProduct("ptune", ["bench", "--model", model, "--method", "lora", "--precision", "bf16",
                                               "--steps", "1", "--batch", "2", "--seq", "8"], environment: noBFloat16)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssert(refused.standardError.contains("this processor has neither AVX512-BF16 nor AMX"), refused.standardError)
        let train = try runProduct("ptune", ["train", "--model", model, "--task", folder + "/mood.json", "--method", "lora",
                                             "--max-steps", "1", "--batch-size", "8", "--out", folder + "/run"],
                                   environment: noBFloat16)
        XCTAssertEqual(train.status, 0, train.standardError)
        XCTAssert(train.standardError.hasPrefix("precision: fp32 (the processor's default)"), train.standardError)
    }

    /// `bench` times the step `train` takes: its report counts the work and the optimizer's share.
    func testBenchTimesTrainingStepsAndReportsTheirWork() throws {
        let model = try pretrainedModelFolder()
        for method in ["lora", "full"] {
            let bench = try runProduct("ptune", ["bench", "--model", model, "--method", method,
                                                 "--precision", "fp32", "--steps", "1", "--batch-size", "2",
                                                 "--max-length", "8", "--json"])
            XCTAssertEqual(bench.status, 0, bench.standardError)
            let json = try JSONSerialization.jsonObject(with: Data(bench.standardOutput.utf8))
            let report = try XCTUnwrap(json as? [String: Any])
            XCTAssertEqual(report["method"] as? String, method)
            XCTAssertEqual(report["precision"] as? String, "fp32")
            XCTAssertGreaterThan(report["tokens_per_s"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(report["gflop_per_step"] as? Double ?? 0, 0)
            let shares = try XCTUnwrap(report["step_shares"] as? [String: Double])
            XCTAssertGreaterThan(shares["optimizer"] ?? 0, 0)
            XCTAssertLessThan(shares["optimizer"] ?? 1, 1)
        }
    }
}
