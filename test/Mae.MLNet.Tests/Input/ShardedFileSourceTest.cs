using Mae.MLNet.Input;
using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Input;

/// <summary>The file sources read data-parallel shards: rank r's batch at step k is micro-batch k·W + r of one process
/// with the same per-rank batch, bit for bit (same positions of the same order, each image cropped by its own index).</summary>
[TestClass]
public class ShardedFileSourceTest
{
    static MaeEpochPlan Plan(int batch, int rank = 0, int world = 1, long skip = 0)
        => new() { Seed = 5, Epoch = 2, BatchSize = batch, Rank = rank, WorldSize = world, SkipBatches = skip };

    [TestMethod]
    public void TheRanksBatchesTogetherAreTheOneProcessEpoch()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 24);
        var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options());
        Assert.IsTrue(source.ReadsShards);
        var one = InputTestUtil.Collect(source, Plan(2));                       // 12 micro-batches of 2
        Assert.AreEqual(12, one.Count);
        foreach (int world in new[] { 2, 3 })
        {
            var ranks = Enumerable.Range(0, world).Select(r => InputTestUtil.Collect(source, Plan(2, r, world))).ToList();
            long steps = MaeDataShard.StepsPerEpoch(24, 2 * world, world);
            foreach (var rank in ranks) Assert.AreEqual(steps, rank.Count, $"W = {world}: batches per rank");
            var interleaved = Enumerable.Range(0, (int)steps).SelectMany(k => ranks.Select(rank => rank[k])).ToList();
            InputTestUtil.AssertBatchesEqual(one, interleaved, $"W = {world}: the ranks' batches, step by step, rank by rank");
        }
        // A mid-epoch resume of one rank starts at the same batch.
        var rank1 = InputTestUtil.Collect(source, Plan(2, 1, 2));
        InputTestUtil.AssertBatchesEqual(rank1.Skip(4).ToList(), InputTestUtil.Collect(source, Plan(2, 1, 2, skip: 4)), "rank 1 from batch 4");
    }

    /// <summary>23 images over 2 ranks in batches of 3: each rank reads ceil(23 / 2) = 12, the last position (23) wrapping
    /// to the order's head — the same image with the same crop as position 0 — as DistributedSampler pads.</summary>
    [TestMethod]
    public void APaddedShardRepeatsTheOrdersHead()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 23);
        var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options());
        var one = InputTestUtil.Collect(source, Plan(3));                       // 7 batches, positions 0 … 20
        var r0 = InputTestUtil.Collect(source, Plan(3, 0, 2));
        var r1 = InputTestUtil.Collect(source, Plan(3, 1, 2));
        Assert.AreEqual(4, r0.Count);
        Assert.AreEqual(4, r1.Count);
        InputTestUtil.AssertBatchesEqual(one.Take(6).ToList(), new[] { r0[0], r1[0], r0[1], r1[1], r0[2], r1[2] }, "positions 0 … 17");
        InputTestUtil.AssertBatchesEqual(new[] { one[6] }, new[] { r0[3] }, "positions 18 … 20");
        int row = one[0].Length / 3;
        var padded = r1[3].AsSpan(2 * row, row).ToArray();                       // position 23
        InputTestUtil.AssertBatchesEqual(new[] { one[0].AsSpan(0, row).ToArray() }, new[] { padded }, "position 23 = position 0");
    }

    [TestMethod]
    public void LabeledShardsCarryTheirLabelsAndEvaluationIsNotSharded()
    {
        using var dir = new TempDir();
        var paths = InputTestUtil.WriteJpegs(dir.Path, 12);
        var labels = Enumerable.Range(0, 12).Select(i => (long)(i % 5)).ToArray();
        var source = MaeLabeledImageFileSource.FromPaths(paths, labels, InputTestUtil.Options());
        Assert.IsTrue(source.ReadsShards);
        (List<float[]> Images, List<long> Labels) Read(MaeEpochPlan plan)
        {
            var images = new List<float[]>();
            var read = new List<long>();
            foreach (var (x, y) in source.Batches(plan))
                using (x) using (y) { images.Add(x.data<float>().ToArray()); read.AddRange(y.data<long>().ToArray()); }
            return (images, read);
        }
        var one = Read(Plan(3));
        var r0 = Read(Plan(3, 0, 2));
        var r1 = Read(Plan(3, 1, 2));
        InputTestUtil.AssertBatchesEqual(one.Images, new[] { r0.Images[0], r1.Images[0], r0.Images[1], r1.Images[1] }, "labelled images");
        var interleaved = new[] { r0.Labels.Take(3), r1.Labels.Take(3), r0.Labels.Skip(3), r1.Labels.Skip(3) }.SelectMany(l => l).ToList();
        CollectionAssert.AreEqual(one.Labels, interleaved, "labels follow their images");
        CollectionAssert.AreEquivalent(labels, one.Labels, "every image once, with its label");
        var e = Assert.ThrowsExactly<ArgumentException>(() => source.Batches(Plan(3, 1, 2) with { Training = false }));
        StringAssert.Contains(e.Message, "cannot be sharded over 2 ranks");
    }
}
