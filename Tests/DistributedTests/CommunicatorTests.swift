import Distributed
import Foundation
import Kernels
import Model
import TestSupport
import XCTest

/// A stand-in for two ranks holding the same values: a sum doubles them. It checks the
/// exchange's packing into buckets, not MPI (the mpirun tests in PTuneCLITests do that).
private final class TwinRanks: Communicator {
    var rank: Int { 0 }
    var size: Int { 2 }
    /// The size of each reduction started, in order.
    var started: [Int] = []
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { buffer[i] *= 2 }
    }
    func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> PendingReduction {
        started.append(count)
        allReduceSum(buffer, count: count)
        return CompletedReduction()
    }
    func allReduceSum(_ values: inout [Double]) { values = values.map { $0 * 2 } }
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {}
    func allGather(_ bytes: Data) -> [Data] { [bytes, bytes] }
    func split(color: Int, key: Int) -> Communicator { self }
    func makeCounter() -> SharedCounter? { SingleProcess().makeCounter() }
    func barrier() {}
    func abort(_ message: String) -> Never { fatalError(message) }
}

final class CommunicatorTests: XCTestCase {
    func testGradientsAreSummedAcrossBucketBoundariesAndFrozenOnesSkipped() {
        var random = SeededRandom(seed: 1)
        let parameters = [[3, 5], [7], [2, 2]].enumerated().map { Parameter("p\($0.offset)", random.tensor($0.element)) }
        for (index, parameter) in parameters.enumerated() where index != 1 {
            parameter.setTrainable(true)
            parameter.gradient!.copy(from: random.tensor(parameter.shape))
        }
        let before = parameters.map { $0.gradient?.array }
        let twins = TwinRanks()
        let exchange = GradientExchange(communicator: twins, parameters: parameters, bucketFloats: 4)
        exchange.sumGradients()
        for (parameter, original) in zip(parameters, before) {
            XCTAssertEqual(parameter.gradient?.array, original?.map { $0 * 2 }, parameter.name)
        }
        XCTAssertEqual(twins.started, [4, 4, 4, 4, 3], "15 + 4 trainable floats in buckets of 4")
        XCTAssertEqual(exchange.bytesPerStep, (15 + 7 + 4) * 4)
    }

    func testBucketsStartAsBackwardFinishesTheirLayers() {
        var random = SeededRandom(seed: 2)
        let names = ["embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight",
                     "encoder.layer.1.output.dense.weight", "classifier.weight"]
        let parameters = names.map { Parameter($0, random.tensor([3])) }
        for parameter in parameters {
            parameter.setTrainable(true)
            parameter.gradient!.copy(from: random.tensor([3]))
        }
        let before = parameters.map { $0.gradient!.array }
        let twins = TwinRanks()
        let exchange = GradientExchange(communicator: twins, parameters: parameters)
        exchange.layerFinished(2)   // the pooler: the head is final
        XCTAssertEqual(twins.started.count, 1)
        XCTAssertEqual(parameters[3].gradient!.array, before[3], "sums are copied back only at the end")
        exchange.layerFinished(1)
        XCTAssertEqual(twins.started.count, 2)
        exchange.layerFinished(0)
        XCTAssertEqual(twins.started.count, 3)
        exchange.sumGradients()   // the embeddings last
        XCTAssertEqual(twins.started.count, 4)
        for (parameter, original) in zip(parameters, before) {
            XCTAssertEqual(parameter.gradient!.array, original.map { $0 * 2 }, parameter.name)
        }
        exchange.sumGradients()   // a step without layer notices starts everything at the end
        XCTAssertEqual(twins.started.count, 8)
    }

    func testCountersHandOutEachNumberOnce() throws {
        for made in [SingleProcess().makeCounter(), MPICommunicator.world().makeCounter()] {
            let counter = try XCTUnwrap(made, "one process always has a window")
            XCTAssertEqual(counter.fetchAndAdd(1), 0)
            XCTAssertEqual(counter.fetchAndAdd(2), 1)
            XCTAssertEqual(counter.fetchAndAdd(1), 3)
            counter.free()
        }
    }

    func testTheMPIWorldOfOneProcessReducesGathersAndSplits() {
        let world = MPICommunicator.world()
        XCTAssertEqual(world.size, 1)
        XCTAssertEqual(world.rank, 0)
        var values = [1.5, -2]
        world.allReduceSum(&values)
        XCTAssertEqual(values, [1.5, -2])
        let floats = Tensor(shape: [3], values: [1, 2, 3])
        world.allReduceSum(floats.data, count: 3)
        XCTAssertEqual(floats.array, [1, 2, 3])
        XCTAssertEqual(world.allGather(Data("hello".utf8)), [Data("hello".utf8)])
        XCTAssertEqual(world.broadcast(Data("x".utf8), root: 0), Data("x".utf8))
        let group = world.split(color: 0, key: 0)
        XCTAssertEqual(group.size, 1)
        group.barrier()
    }

    func testParameterHashChangesWithAnyValue() {
        let parameter = Parameter("p", Tensor(shape: [4], values: [1, 2, 3, 4]))
        let exchange = GradientExchange(communicator: SingleProcess(), parameters: [parameter])
        let hash = exchange.valuesHash()
        parameter.value[2] = 3.0000002
        XCTAssertNotEqual(exchange.valuesHash(), hash)
    }
}
