using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Training;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Training.Distributed;

/// <summary>Featurizing split by rank: each rank's part written as a binary IDataView, the parts read back as one
/// view equal (values and row order) to featurizing everything in one go. The ranks run one after another in this
/// process (each with its own rank); the barrier is the only collective the parts use.</summary>
[TestClass]
public class ShardedFeaturizeTest
{
    const int Size = 16, Length = 3 * Size * Size;

    public sealed class Row
    {
        public string Name { get; set; } = "";
        [VectorType(Length)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    public sealed class Output
    {
        public string Name { get; set; } = "";
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void PartsReadBackEqualTheWholeSetFeaturizedAtOnce()
    {
        var ml = new MLContext(seed: 1);
        TorchRuntime.Seed(5);
        using var encoder = new MaeEncoder(new MaeConfig
        {
            ImageSize = Size, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
        });
        var rng = new Random(3);
        var rows = Enumerable.Range(0, 11).Select(i => new Row { Name = $"img{i}", Pixels = Enumerable.Range(0, Length).Select(_ => (float)rng.NextDouble()).ToArray() }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, batchSize: 4, device: MaeDevice.Cpu).Fit(data);
        var whole = ml.Data.CreateEnumerable<Output>(model.Transform(data), reuseRowObject: false).ToList();

        using var dir = new TempDir();
        string folder = dir.File("parts");
        for (int rank = 0; rank < 3; rank++)
        {
            string path = ml.Data.SaveShard(model, data, folder, new Ranks(rank, 3), "Name", "Features");
            Assert.AreEqual($"part-{rank:D5}-of-00003.idv", Path.GetFileName(path));
        }
        var loaded = ml.Data.LoadShards(folder);
        Assert.AreEqual(11L, loaded.GetRowCount());
        Assert.IsNull(loaded.Schema.GetColumnOrNull("Pixels"), "only the kept columns are written");
        var parts = ml.Data.CreateEnumerable<Output>(loaded, reuseRowObject: false).ToList();
        Assert.AreEqual(11, parts.Count);
        for (int i = 0; i < 11; i++)
        {
            Assert.AreEqual(whole[i].Name, parts[i].Name, "rows come back in the input's order");
            CollectionAssert.AreEqual(whole[i].Features, parts[i].Features, $"row {i}");
        }

        // A missing part (a rank that failed) is named; parts of two runs are not mixed.
        File.Delete(Path.Combine(folder, "part-00001-of-00003.idv"));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Data.LoadShards(folder));
        StringAssert.Contains(e.Message, "part-00001-of-00003.idv");
        ml.Data.SaveShard(model, data, folder, new Ranks(0, 2), "Name", "Features");
        e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Data.LoadShards(folder));
        StringAssert.Contains(e.Message, "mixes parts");
    }

    /// <summary>The same with 2 MPI ranks: each writes its part, rank 0 reads them back after SaveShard's barrier.</summary>
    [TestMethod]
    public void TwoMpiRanksWritePartsThatReadBackAsTheWholeSet()
    {
        using var dir = new TempDir();
        string folder = dir.File("features");
        var direct = MpiJob.Run(0, new[] { folder, "13", "direct" }, mode: "featurize");
        Assert.AreEqual(0, direct.ExitCode, direct.Stderr);
        var job = MpiJob.Run(2, new[] { folder, "13" }, mode: "featurize");
        Assert.AreEqual(0, job.ExitCode, job.Stdout + job.Stderr);
        Assert.IsTrue(File.Exists(Path.Combine(folder, "part-00000-of-00002.idv")));
        Assert.IsTrue(File.Exists(Path.Combine(folder, "part-00001-of-00002.idv")));
        var expected = File.ReadAllLines(Path.Combine(folder, "direct.txt"));
        Assert.AreEqual(13, expected.Length);
        CollectionAssert.AreEqual(expected, File.ReadAllLines(Path.Combine(folder, "all.txt")));
    }

    [TestMethod]
    public void ShardsCoverEveryRowOnceInBlocks()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(i => new Row { Name = $"r{i}", Pixels = new float[Length] }));
        var names = Enumerable.Range(0, 4).SelectMany(r => ml.Data.CreateEnumerable<Row>(ml.Data.Shard(data, r, 4), false).Select(x => x.Name)).ToList();
        CollectionAssert.AreEqual(Enumerable.Range(0, 10).Select(i => $"r{i}").ToList(), names);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Data.Shard(data, 4, 4));
    }

    sealed class Ranks(int rank, int world) : IMaeCollective
    {
        public int Rank => rank;
        public int WorldSize => world;
        public int LocalRank => 0;
        public string Name => "sequential ranks";
        public void AllReduceMean(Tensor tensor) => Assert.Fail("featurizing needs no all-reduce");
        public void Broadcast(Tensor tensor, int root = 0) => Assert.Fail("featurizing needs no broadcast");
        public void Barrier() { }
        public void Abort(string message) => Assert.Fail($"featurizing must not abort: {message}");
    }
}
