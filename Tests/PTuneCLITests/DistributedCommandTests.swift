import Foundation
import Distributed
import Model
import TestSupport
import XCTest

/// `ptune train` under `mpirun -np 2` against the same command in one process.
final class DistributedCommandTests: XCTestCase {
    /// A small two-label task of uneven lengths, so the ranks' shares pad differently.
    private func makeTask(in folder: String) throws -> String {
        let good = ["great", "wonderful", "excellent", "superb"], bad = ["terrible", "awful", "dreadful", "boring"]
        func lines(_ range: Range<Int>) -> String {
            range.map { i in
                let text = "the film was \((i % 2 == 0 ? good : bad)[(i / 2) % 4])" + String(repeating: " indeed", count: i % 5)
                return String(decoding: try! JSONSerialization.data(withJSONObject: ["text": text, "label": i % 2 == 0 ? "pos" : "neg"]),
                              as: UTF8.self)
            }.joined(separator: "\n") + "\n"
        }
        try lines(0..<64).write(toFile: folder + "/train.jsonl", atomically: true, encoding: .utf8)
        try lines(64..<80).write(toFile: folder + "/dev.jsonl", atomically: true, encoding: .utf8)
        try #"{"name": "tiny", "kind": "classification", "labels": ["neg", "pos"], "format": "jsonl", "train": "train.jsonl", "dev": "dev.jsonl"}"#
            .write(toFile: folder + "/task.json", atomically: true, encoding: .utf8)
        return folder + "/task.json"
    }

    private func mpirun() throws -> String {
        for candidate in ["/usr/bin/mpirun", "/usr/local/bin/mpirun"] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        XCTFail("mpirun not found: scripts/setup.sh installs openmpi-bin")
        throw XCTSkip("no mpirun")
    }

    private func losses(_ run: String) throws -> [Double] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }

    func testTwoRanksTrainExactlyAsOneProcess() throws {
        let folder = try temporaryFolder(self)
        let task = try makeTask(in: folder)
        let model = try pretrainedModelFolder()
        let ptune = productsFolder.appendingPathComponent("ptune").path
        // Dropout stays on: masks follow each example, not the rank that holds it. At float32, where
        // "the same up to summation order" is tight enough to compare.
        let common = ["train", "--model", model, "--task", task, "--method", "lora", "--lora-r", "4", "--max-steps", "6",
                      "--batch-size", "32", "--eval-every", "3", "--log-every", "1", "--precision", "fp32"]
        let single = try runProduct("ptune", common + ["--out", folder + "/one"])
        XCTAssertEqual(single.status, 0, single.standardError)
        let distributed = try runProcess(try mpirun(), ["-np", "2", "--bind-to", "none", "-x", "PTUNE_THREADS=1", ptune]
                                         + common + ["--out", folder + "/two"],
                                         environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                                                       "OMPI_MCA_btl_vader_single_copy_mechanism": "none"])
        XCTAssertEqual(distributed.status, 0, distributed.standardError)

        let (a, b) = (try losses(folder + "/one"), try losses(folder + "/two"))
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(a.count, b.count)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x), "losses") }

        // The trainable parameters as one vector: ‖θ₁ − θ₂‖ / ‖θ₁‖ within 1e-5. (Single elements can differ
        // more: the two runs add the same gradients in another order, and AdamW divides near-zero
        // gradients by their own size, which magnifies that rounding, e.g. in a two-label classifier bias.)
        let one = try SafeTensorsFile(path: folder + "/one/checkpoint.safetensors")
        let two = try SafeTensorsFile(path: folder + "/two/checkpoint.safetensors")
        XCTAssertEqual(one.names, two.names)
        XCTAssertTrue(one.names.contains { $0.hasPrefix("param.") && $0.contains("lora_A") })
        var difference = 0.0, norm = 0.0
        for name in one.names where name.hasPrefix("param.") {
            let (x, y) = (try one.tensor(name), try two.tensor(name))
            var tensorDifference = 0.0, tensorNorm = 0.0
            for i in 0..<x.count {
                tensorDifference += Double(x[i] - y[i]) * Double(x[i] - y[i])
                tensorNorm += Double(x[i]) * Double(x[i])
            }
            XCTAssertLessThan(tensorDifference.squareRoot(), 1e-4 * tensorNorm.squareRoot(), name)
            difference += tensorDifference
            norm += tensorNorm
        }
        XCTAssertLessThan(difference.squareRoot(), 1e-5 * norm.squareRoot(), "trainable parameters, relative")
        XCTAssertEqual(try one.metadata["step"], "6")
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/two/summary.json"))) as? [String: Any])
        XCTAssertEqual(summary["ranks"] as? Int, 2)
    }

    /// SIGUSR1 to mpirun reaches every rank (SIGTERM too, but mpirun kills the ranks a second after
    /// it, shorter than a debug build's step); they agree on the step, write one checkpoint and
    /// exit cleanly, and `--resume` under mpirun finishes the run.
    func testASignalToMpirunStopsEveryRankAtOneCheckpoint() throws {
        let folder = try temporaryFolder(self)
        let task = try makeTask(in: folder), out = folder + "/run"
        let environment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                           "OMPI_MCA_btl_vader_single_copy_mechanism": "none"]
        let mpi = ["-np", "2", "--bind-to", "none", "-x", "PTUNE_THREADS=1", try ptunePath()]
        let process = try startProcess(try mpirun(), mpi + [
            "train", "--model", try pretrainedModelFolder(), "--task", task, "--method", "lora", "--max-steps", "40",
            "--batch-size", "4", "--eval-every", "100", "--log-every", "1", "--out", out,
        ], environment: environment, errorPath: folder + "/err.txt")
        waitWhileRunning(process) { ((try? TextFile.lines(atPath: out + "/metrics.jsonl"))?.count ?? 0) >= 2 }
        kill(process.processIdentifier, SIGUSR1)
        process.waitUntilExit()
        let message = (try? String(contentsOfFile: folder + "/err.txt", encoding: .utf8)) ?? ""
        XCTAssert(message.contains("stopped: SIGUSR1 at step"), message)
        XCTAssert(FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors"), message)
        let resumed = try runProcess(try mpirun(), mpi + ["train", "--resume", out], environment: environment)
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        XCTAssertEqual((summary as? [String: Any])?["steps"] as? Int, 40)
    }

    func testAnErrorOnTheRanksEndsTheJobWithTheMessage() throws {
        let folder = try temporaryFolder(self)
        let task = try makeTask(in: folder)
        let result = try runProcess(try mpirun(), ["-np", "2", "--bind-to", "none", productsFolder.appendingPathComponent("ptune").path,
                                                   "train", "--model", try pretrainedModelFolder(), "--task", task,
                                                   "--method", "ptv2", "--batch-size", "1", "--out", folder + "/run"],
                                    environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssert(result.standardError.contains("the global batch of 1 cannot be shared by 2 ranks"), result.standardError)
    }

    /// Two ranks started with different commands (mpirun's `A : B` form).
    private func runTwoRanks(_ first: [String], _ second: [String]) throws -> (status: Int32, standardError: String) {
        let ptune = productsFolder.appendingPathComponent("ptune").path
        let result = try runProcess(try mpirun(), ["-np", "1", "--bind-to", "none", ptune] + first + [":", "-np", "1", ptune] + second,
                                    environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"])
        return (result.status, result.standardError)
    }

    func testATaskThatFailsToLoadOnOneRankIsReportedByRankZero() throws {
        let folder = try temporaryFolder(self)
        let task = try makeTask(in: folder)
        let common = ["train", "--model", try pretrainedModelFolder(), "--method", "ptv2", "--out", folder + "/run"]
        let missing = folder + "/elsewhere/task.json"
        let result = try runTwoRanks(common + ["--task", task], common + ["--task", missing])
        XCTAssertNotEqual(result.status, 0)
        XCTAssert(result.standardError.contains("[rank 0/2] rank 1: \(missing)"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/run"), "nothing written")
    }

    func testRanksStartedWithDifferentSettingsStopWithAClearError() throws {
        let folder = try temporaryFolder(self)
        let task = try makeTask(in: folder)
        let common = ["train", "--model", try pretrainedModelFolder(), "--task", task, "--method", "ptv2", "--out", folder + "/run"]
        let result = try runTwoRanks(common + ["--lr", "0.01"], common + ["--lr", "0.02"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssert(result.standardError.contains("[rank 0/2] the ranks were started with different settings"), result.standardError)
    }

    /// A second, tagging task, so the pipeline's groups each get one.
    private func makeTaggingTask(in folder: String) throws -> String {
        let names = ["alice", "bob", "carol"], cities = ["paris", "rome", "oslo"]
        func lines(_ range: Range<Int>) -> String {
            range.map { i in
                let tokens = ["yesterday", names[i % 3], "flew", "to", cities[(i / 3) % 3]]
                let tags = ["O", "B-PER", "O", "O", "B-LOC"]
                return String(decoding: try! JSONSerialization.data(withJSONObject: ["tokens": tokens, "tags": tags]), as: UTF8.self)
            }.joined(separator: "\n") + "\n"
        }
        try lines(0..<32).write(toFile: folder + "/tags-train.jsonl", atomically: true, encoding: .utf8)
        try lines(32..<40).write(toFile: folder + "/tags-dev.jsonl", atomically: true, encoding: .utf8)
        try #"{"name": "tinyner", "kind": "tagging", "labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "format": "jsonl", "train": "tags-train.jsonl", "dev": "tags-dev.jsonl"}"#
            .write(toFile: folder + "/tags.json", atomically: true, encoding: .utf8)
        return folder + "/tags.json"
    }

    func testPipelineOnTwoRanksWritesARegistryEveryAdapterOfWhichLoads() throws {
        let folder = try temporaryFolder(self)
        let tasks = [try makeTask(in: folder), try makeTaggingTask(in: folder)].joined(separator: ",")
        let model = try pretrainedModelFolder()
        let pipeline = { (extra: [String]) in
            try runProcess(try self.mpirun(), ["-np", "2", "--bind-to", "none", "-x", "PTUNE_THREADS=1",
                                               productsFolder.appendingPathComponent("ptune").path, "run", "--model", model,
                                               "--tasks", tasks, "--groups", "2", "--out", folder + "/pipeline",
                                               "--pretrain-steps", "4", "--pretrain-batch-size", "8", "--prompt-length", "4",
                                               "--max-steps", "3", "--batch-size", "8", "--eval-every", "3",
                                               "--lr", "2e-2", "--pretrained-lr", "5e-3"] + extra,
                           environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                                         "OMPI_MCA_btl_vader_single_copy_mechanism": "none"])
        }
        let result = try pipeline([])
        XCTAssertEqual(result.status, 0, result.standardError)
        let registry = folder + "/pipeline/registry"
        // Rerun with --resume: every stage is found finished, and the registry comes out the same.
        let digests = { () throws -> [String] in
            let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: registry + "/manifest.json"))) as? [String: Any])
            return (manifest["adapters"] as? [[String: Any]] ?? []).map { "\($0["task"] ?? "") \(($0["sha256"] as? [String: String])?["adapter_model.safetensors"] ?? "")" }
        }
        let before = try digests()
        let resumed = try pipeline(["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        XCTAssertFalse(resumed.standardError.contains("step 3/3"), "nothing is trained again")
        XCTAssertEqual(try digests(), before)
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: registry + "/manifest.json"))) as? [String: Any])
        let adapters = try XCTUnwrap(manifest["adapters"] as? [[String: Any]])
        XCTAssertEqual(adapters.compactMap { $0["task"] as? String }.sorted(), ["tiny", "tinyner"])
        XCTAssertEqual(Set(adapters.compactMap { $0["group"] as? Int }), [0, 1], "the two groups trained one task each")
        for adapter in adapters {
            let task = try XCTUnwrap(adapter["task"] as? String)
            for (file, digest) in try XCTUnwrap(adapter["sha256"] as? [String: String]) {
                // Checked as a user would, with coreutils' sha256sum.
                let sum = try runProcess("/usr/bin/sha256sum", ["\(registry)/\(task)/\(file)"])
                XCTAssertEqual(sum.standardOutput.split(separator: " ").first.map(String.init), digest, file)
            }
            try "{\"text\": \"the film was great\"}\n".write(toFile: folder + "/in.jsonl", atomically: true, encoding: .utf8)
            if task == "tiny" {
                let predicted = try runProduct("ptune", ["predict", "--model", model, "--adapter", "\(registry)/\(task)",
                                                         "--input", folder + "/in.jsonl"])
                XCTAssertEqual(predicted.status, 0, predicted.standardError)
                XCTAssert(predicted.standardOutput.contains("\"label\""), predicted.standardOutput)
            }
        }
        let rate = { (run: String) throws -> Double? in
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/pipeline/\(run)/config.json")))
            return (config as? [String: Any])?["lr"] as? Double
        }
        XCTAssertEqual(try XCTUnwrap(rate("runs/tiny")), 5e-3, accuracy: 1e-9, "from the pretrained prompt: --pretrained-lr")
        XCTAssertEqual(try XCTUnwrap(rate("scratch/runs/tiny")), 2e-2, accuracy: 1e-9, "from scratch: --lr")
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/pipeline/pretrain/prompt.safetensors"))
        XCTAssertTrue(try String(contentsOfFile: folder + "/pipeline/results.md", encoding: .utf8).contains("from scratch"))
    }

    func testMoreGroupsThanRanksIsAClearError() throws {
        let folder = try temporaryFolder(self)
        let result = try runProduct("ptune", ["adapt", "--model", try pretrainedModelFolder(), "--tasks", try makeTask(in: folder),
                                              "--method", "ptv2", "--groups", "2", "--out", folder + "/out"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssert(result.standardError.contains("2 groups need at least 2 ranks, and this job has 1"), result.standardError)
    }
}
