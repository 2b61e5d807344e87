using Mae.MLNet.Tests.Training;
using Mae.MLNet.TrainHost;
using Mae.MLNet.Training;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Training.Distributed;

/// <summary>The shard arithmetic and the data-parallel checks that need no second process.</summary>
[TestClass]
public class DataShardTest
{
    [TestMethod]
    public void RanksTogetherReadWhatOneProcessReadsPerStep()
    {
        foreach (var (n, batch, world) in new[] { (40L, 4, 2), (41L, 6, 3), (10L, 4, 4), (7L, 2, 2) })
        {
            int b = MaeDataShard.RankBatch(batch, world);
            long steps = MaeDataShard.StepsPerEpoch(n, batch, world);
            // DistributedSampler + drop_last: ceil(n / W) positions per rank, in whole batches of B / W.
            Assert.AreEqual((n + world - 1) / world / b, steps, $"n={n} B={batch} W={world}");
            var perRank = Enumerable.Range(0, world).Select(r => MaeDataShard.Positions(n, b, r, world).ToList()).ToList();
            foreach (var list in perRank) Assert.AreEqual(steps, list.Count);
            for (int k = 0; k < steps; k++)
            {
                var union = perRank.SelectMany(list => list[k]).OrderBy(p => p).ToArray();
                CollectionAssert.AreEqual(Enumerable.Range(k * batch, batch).Select(i => (long)i).ToArray(), union, $"step {k}, n={n} B={batch} W={world}");
                for (int r = 0; r < world; r++) // rank r's batch = micro-batch kW + r of one process with batch b
                    CollectionAssert.AreEqual(Enumerable.Range((k * world + r) * b, b).Select(i => (long)i).ToArray(), perRank[r][k]);
            }
        }
    }

    [TestMethod]
    public void EveryImageOncePerEpochWhenNoPaddingIsNeeded()
    {
        var order = MaePlanRandom.Permutation(40, 7, 3);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 40).Select(i => (long)i).ToArray(), order);
        CollectionAssert.AreNotEqual(order, MaePlanRandom.Permutation(40, 7, 4), "each epoch has its own order");
        var read = Enumerable.Range(0, 2).SelectMany(r => MaeDataShard.Positions(40, 2, r, 2)).SelectMany(p => p).Select(p => order[p % 40]).ToList();
        CollectionAssert.AreEquivalent(order, read);
        // 41 images on 2 ranks: 21 positions each, position 41 pads with the order's head.
        var padded = Enumerable.Range(0, 2).SelectMany(r => MaeDataShard.Positions(41, 1, r, 2)).SelectMany(p => p).ToList();
        Assert.AreEqual(42, padded.Count);
        Assert.AreEqual(41L, padded.Max());
    }

    [TestMethod]
    public void MaskNoiseDependsOnlyOnSeedEpochAndPosition()
    {
        var a = MaePlanRandom.MaskNoise(7, 1, new long[] { 5, 9 }, 16);
        var b = MaePlanRandom.MaskNoise(7, 1, new long[] { 9 }, 16);
        CollectionAssert.AreEqual(a.Skip(16).ToArray(), b);
        CollectionAssert.AreNotEqual(a.Take(16).ToArray(), b);
        CollectionAssert.AreNotEqual(b, MaePlanRandom.MaskNoise(7, 2, new long[] { 9 }, 16));
        Assert.IsTrue(a.All(x => x >= 0 && x < 1));
    }

    [TestMethod]
    public void BadDataParallelSettingsAreRefusedBeforeAnyStep()
    {
        using var source = MaeImageSource.FromArrays(TinyRun.Images(40), 3, 16, 16);
        var options = TinyRun.Options(1);
        options.BatchSize = 3;
        options.Collective = new TwoRankCheckOnly();
        using var model = MaePretrainer.CreateModel(TinyRun.Config, options);
        var e = Assert.ThrowsExactly<ArgumentException>(() => new MaePretrainer(options).Train(model, source));
        StringAssert.Contains(e.Message, "multiple of 2");

        options.BatchSize = 4;
        var streaming = new MaeStreamingImageSource(() => Array.Empty<float[]>(), new MaeImageShape(3, 16, 16), 40);
        e = Assert.ThrowsExactly<ArgumentException>(() => new MaePretrainer(options).Train(model, streaming));
        StringAssert.Contains(e.Message, "MaeStreamingImageSource");
    }

    [TestMethod]
    public void OneProcessCollectiveTrainsAndReportsNoWaiting()
    {
        using var source = MaeImageSource.FromArrays(TinyRun.Images(16), 3, 16, 16);
        var options = TinyRun.Options(1);
        options.Collective = MaeCollective.Single;
        using var model = MaePretrainer.CreateModel(TinyRun.Config, options);
        var result = new MaePretrainer(options).Train(model, source);
        Assert.AreEqual(4, result.StepLosses.Count);
        Assert.IsTrue(result.StepLosses.All(float.IsFinite));
    }

    [TestMethod]
    public void TorchrunVariablesWithoutMpirunAreRefusedNamingMpirun()
    {
        var saved = new[] { "WORLD_SIZE", "RANK", "OMPI_COMM_WORLD_SIZE" }.ToDictionary(k => k, Environment.GetEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable("OMPI_COMM_WORLD_SIZE", null);
            Environment.SetEnvironmentVariable("WORLD_SIZE", "2");
            Environment.SetEnvironmentVariable("RANK", "1");
            var e = Assert.ThrowsExactly<MaeCollectiveException>(() => MaeCollective.FromEnvironment());
            StringAssert.Contains(e.Message, "mpirun");
            Environment.SetEnvironmentVariable("WORLD_SIZE", "two");
            e = Assert.ThrowsExactly<MaeCollectiveException>(() => MaeCollective.FromEnvironment());
            StringAssert.Contains(e.Message, "WORLD_SIZE is 'two'");
            Environment.SetEnvironmentVariable("WORLD_SIZE", "1");
            Environment.SetEnvironmentVariable("RANK", "0");
            Assert.AreSame(MaeCollective.Single, MaeCollective.FromEnvironment());
        }
        finally
        {
            foreach (var (k, v) in saved) Environment.SetEnvironmentVariable(k, v);
        }
    }

    /// <summary>Claims two ranks; the checks must throw before any collective call.</summary>
    sealed class TwoRankCheckOnly : IMaeCollective
    {
        public int Rank => 0;
        public int WorldSize => 2;
        public int LocalRank => 0;
        public string Name => "check only";
        public void AllReduceMean(Tensor tensor) => Assert.Fail("no collective call expected");
        public void Broadcast(Tensor tensor, int root = 0) => Assert.Fail("no collective call expected");
        public void Barrier() => Assert.Fail("no collective call expected");
        public void Abort(string message) => Assert.Fail($"no abort expected: {message}");
    }
}
