using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Input;

/// <summary>The in-memory sources make their batches from the epoch plan, as the file sources do: checked against
/// what the plan promises (each image once, order from (seed, epoch) only, resume and ranks reading the same images),
/// with images tagged by their index so every batch can be read back by hand.</summary>
[TestClass]
public class InMemorySourceTest
{
    const int N = 10;

    static MaeImageSource Tagged() => MaeImageSource.FromArrays(
        Enumerable.Range(0, N).Select(i => { var a = new float[1 * 2 * 2]; a[0] = i; return a; }).ToList(), 1, 2, 2);

    static List<long[]> Read(IMaeImageSource source, MaeEpochPlan plan) =>
        source.Batches(plan).Select(t => { using (t) return Enumerable.Range(0, (int)t.shape[0]).Select(i => (long)t[i, 0, 0, 0].item<float>()).ToArray(); }).ToList();

    [TestMethod]
    public void ATrainingEpochIsAPermutationFromSeedAndEpochAlone()
    {
        using var source = Tagged();
        var plan = new MaeEpochPlan { Seed = 5, Epoch = 2, BatchSize = 3 };
        manual_seed(1);
        var first = Read(source, plan);
        manual_seed(2);   // libtorch's generator has no say
        var again = Read(source, plan);
        Assert.AreEqual(3, first.Count);   // 10 / 3, the incomplete last batch dropped
        var flat = first.SelectMany(b => b).ToList();
        Assert.AreEqual(9, flat.Distinct().Count(), "no image twice in an epoch");
        Assert.IsTrue(flat.All(i => i is >= 0 and < N));
        CollectionAssert.AreEqual(flat, again.SelectMany(b => b).ToList());
        var otherEpoch = Read(source, plan with { Epoch = 3 }).SelectMany(b => b).ToList();
        CollectionAssert.AreNotEqual(flat, otherEpoch, "each epoch has its own order");

        // A resume inside the epoch reads what the whole epoch reads from there.
        CollectionAssert.AreEqual(flat.Skip(3).ToList(), Read(source, plan with { SkipBatches = 1 }).SelectMany(b => b).ToList());
    }

    [TestMethod]
    public void TwoRanksTogetherReadWhatOneProcessReads()
    {
        using var source = Tagged();
        var one = Read(source, new MaeEpochPlan { Seed = 9, BatchSize = 4 });
        var rank0 = Read(source, new MaeEpochPlan { Seed = 9, BatchSize = 2, Rank = 0, WorldSize = 2 });
        var rank1 = Read(source, new MaeEpochPlan { Seed = 9, BatchSize = 2, Rank = 1, WorldSize = 2 });
        Assert.AreEqual(2, one.Count);
        for (int k = 0; k < one.Count; k++)
            CollectionAssert.AreEqual(one[k], rank0[k].Concat(rank1[k]).ToArray(), $"step {k}");
    }

    [TestMethod]
    public void EvaluationReadsInOrderAndKeepsTheLastBatchWithItsLabels()
    {
        var images = Enumerable.Range(0, N).Select(i => { var a = new float[1 * 2 * 2]; a[0] = i; return a; }).ToList();
        using var labeled = MaeLabeledImageSource.FromArrays(images, Enumerable.Range(0, N).Select(i => (long)(i % 3)), new MaeImageShape(1, 2, 2));
        var seen = new List<(long Image, long Label)>();
        var sizes = new List<long>();
        foreach (var (x, y) in labeled.Batches(new MaeEpochPlan { BatchSize = 4, Training = false }))
        {
            using (x) using (y)
            {
                sizes.Add(x.shape[0]);
                for (int i = 0; i < x.shape[0]; i++) seen.Add(((long)x[i, 0, 0, 0].item<float>(), y[i].item<long>()));
            }
        }
        CollectionAssert.AreEqual(new long[] { 4, 4, 2 }, sizes);
        CollectionAssert.AreEqual(Enumerable.Range(0, N).Select(i => ((long)i, (long)(i % 3))).ToList(), seen);
        Assert.ThrowsExactly<ArgumentException>(() => labeled.Batches(new MaeEpochPlan { BatchSize = 2, Training = false, Rank = 0, WorldSize = 2 }));
    }
}
