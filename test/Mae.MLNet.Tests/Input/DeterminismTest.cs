using Mae.MLNet.Input;
using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Input;

/// <summary>A batch is a function of the plan alone: worker count, prefetch depth and resume point change nothing.</summary>
[TestClass]
public class DeterminismTest
{
    [TestMethod]
    public void OneAndFourWorkersGiveBitIdenticalBatches()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 37);
        var plan = new MaeEpochPlan { Seed = 11, Epoch = 3, BatchSize = 5 };
        var one = InputTestUtil.Collect(MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options(workers: 1, prefetch: 1)), plan);
        var four = InputTestUtil.Collect(MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options(workers: 4, prefetch: 3)), plan);
        Assert.AreEqual(7, one.Count); // 37 / 5, the incomplete last batch dropped
        InputTestUtil.AssertBatchesEqual(one, four, "1 vs 4 workers");
        // The batches are real images, not constants: normalised values spread.
        Assert.IsTrue(one[0].Max() - one[0].Min() > 2, "the batch should hold varied normalised pixels");
    }

    [TestMethod]
    public void AnotherEpochOrSeedGivesAnotherOrderAndCrops()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 12);
        var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options());
        var e0 = InputTestUtil.Collect(source, new MaeEpochPlan { Seed = 1, Epoch = 0, BatchSize = 12 })[0];
        var e0again = InputTestUtil.Collect(source, new MaeEpochPlan { Seed = 1, Epoch = 0, BatchSize = 12 })[0];
        var e1 = InputTestUtil.Collect(source, new MaeEpochPlan { Seed = 1, Epoch = 1, BatchSize = 12 })[0];
        var s2 = InputTestUtil.Collect(source, new MaeEpochPlan { Seed = 2, Epoch = 0, BatchSize = 12 })[0];
        InputTestUtil.AssertBatchesEqual(new[] { e0 }, new[] { e0again }, "same plan twice");
        Assert.IsFalse(e0.SequenceEqual(e1), "epoch 1 must differ from epoch 0");
        Assert.IsFalse(e0.SequenceEqual(s2), "seed 2 must differ from seed 1");

        // Same image set, another order: each image's crop differs too, so no row of epoch 1 equals any row of epoch 0.
        int row = e0.Length / 12;
        var rows0 = Enumerable.Range(0, 12).Select(i => e0.AsSpan(i * row, row).ToArray()).ToList();
        for (int i = 0; i < 12; i++)
            Assert.IsFalse(rows0.Any(r => r.SequenceEqual(e1.AsSpan(i * row, row).ToArray())), $"epoch 1 row {i} repeats an epoch-0 crop");
    }

    [TestMethod]
    public void SkipBatchesResumesExactly()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 23);
        var source = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options(workers: 3));
        var plan = new MaeEpochPlan { Seed = 5, Epoch = 2, BatchSize = 4 };
        var all = InputTestUtil.Collect(source, plan);
        var tail = InputTestUtil.Collect(source, plan with { SkipBatches = 3 });
        Assert.AreEqual(5, all.Count);
        InputTestUtil.AssertBatchesEqual(all.Skip(3).ToList(), tail, "resumed at batch 3");
        Assert.AreEqual(0, InputTestUtil.Collect(source, plan with { SkipBatches = 5 }).Count);
    }

    [TestMethod]
    public void EvaluationKeepsFileOrderAndTheLastBatch()
    {
        using var dir = new TempDir();
        var paths = InputTestUtil.WriteJpegs(dir.Path, 7);
        var options = InputTestUtil.Options(workers: 3);
        var source = MaeImageFileSource.FromFolder(dir.Path, options);
        var batches = InputTestUtil.Collect(source, new MaeEpochPlan { BatchSize = 3, Training = false });
        Assert.AreEqual(3, batches.Count);
        Assert.AreEqual(3 * 16 * 16, batches[2].Length); // 7 = 3 + 3 + 1
        // Image 4 alone, from a source of that one file, equals row 1 of batch 1.
        var single = InputTestUtil.Collect(MaeImageFileSource.FromPaths(new[] { paths[4] }, options), new MaeEpochPlan { BatchSize = 1, Training = false })[0];
        CollectionAssert.AreEqual(single, batches[1].AsSpan(768, 768).ToArray());
    }

    [TestMethod]
    public void ClassFoldersGiveSortedClassesAndLabels()
    {
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(Path.Combine(dir.Path, "zebra"), 3, seed0: 0);
        InputTestUtil.WriteJpegs(Path.Combine(dir.Path, "ant"), 2, seed0: 10);
        InputTestUtil.WriteJpegs(Path.Combine(dir.Path, "Moth"), 4, seed0: 20);
        var source = MaeLabeledImageFileSource.FromClassFolders(dir.Path, InputTestUtil.Options());
        CollectionAssert.AreEqual(new[] { "Moth", "ant", "zebra" }, source.Classes!.ToArray()); // ordinal, as Python's sorted
        Assert.AreEqual(9, source.Count);
        Assert.AreEqual(3, source.LabelBound);
        var labels = new List<long>();
        foreach (var (images, l) in source.Batches(new MaeEpochPlan { BatchSize = 4, Training = false }))
        {
            labels.AddRange(l.data<long>().ToArray());
            images.Dispose();
            l.Dispose();
        }
        CollectionAssert.AreEqual(new long[] { 0, 0, 0, 0, 1, 1, 2, 2, 2 }, labels);

        // Training: shuffled, the labels follow their images.
        var shuffled = new List<long>();
        foreach (var (images, l) in source.Batches(new MaeEpochPlan { Seed = 3, BatchSize = 9 }))
        {
            shuffled.AddRange(l.data<long>().ToArray());
            images.Dispose();
            l.Dispose();
        }
        CollectionAssert.AreEquivalent(labels, shuffled);
        CollectionAssert.AreNotEqual(labels, shuffled);
    }
}
