using Mae.MLNet.Input;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Input;

/// <summary>The decode workers' nice value: lowered only when the training step runs on CPU threads (where the
/// workers would stall its OpenMP regions), left at the process's priority for a GPU step, the user's value always wins.</summary>
[TestClass]
public class WorkerPriorityTest
{
    [TestMethod]
    public void NiceOnlyForACpuStepUnlessSet()
    {
        var chosen = new MaeImageInputOptions();
        Assert.IsNull(chosen.WorkerNice);
        Assert.AreEqual(0, chosen.ResolveWorkerNice(stepOnCpu: false));
        Assert.AreEqual(MaeImageInputOptions.CpuStepWorkerNice, chosen.ResolveWorkerNice(stepOnCpu: true));

        var set = new MaeImageInputOptions { WorkerNice = 7 };
        Assert.AreEqual(7, set.ResolveWorkerNice(stepOnCpu: false));
        Assert.AreEqual(7, set.With(set.Augmentation).ResolveWorkerNice(stepOnCpu: true));
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeImageInputOptions { WorkerNice = 20 }.Validate());
        StringAssert.Contains(e.Message, "WorkerNice must be in [0, 19]; got 20");
    }

    /// <summary>Beside the niced workers, as many decode at the process's priority while the consumer waits for a batch
    /// (other processes must not starve the input; the step is not running then). Held back, the niced workers make no
    /// image at all, so the urgent ones alone must make every batch the consumer waits for — the same bits as always.</summary>
    [TestMethod]
    public void UrgentWorkersMakeTheBatchesTheConsumerWaitsFor()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("worker priorities are Linux-only");
        using var dir = new TempDir();
        InputTestUtil.WriteJpegs(dir.Path, 30, minSide: 20, maxSide: 60);
        var plan = new MaeEpochPlan { Seed = 3, BatchSize = 10 };
        var expected = MaeImageFileSource.FromFolder(dir.Path, InputTestUtil.Options(workers: 2)).Batches(plan).Select(t => t.clone()).ToList();

        using var hold = new ManualResetEventSlim(false);
        var options = InputTestUtil.Options(workers: 2);
        options.HoldNicedWorkers = hold;
        var source = MaeImageFileSource.FromFolder(dir.Path, options);
        var got = new List<TorchSharp.torch.Tensor>();
        using var tookAll = new ManualResetEventSlim(false);
        // (The epoch's end joins the workers, the held ones too: the test lets them go once it has looked.)
        var consumer = Task.Run(() => { foreach (var batch in source.Batches(plan)) { got.Add(batch); if (got.Count == 3) tookAll.Set(); } });
        try
        {
            // A deadline for a state, not a speed: without the urgent workers the consumer would wait for ever.
            Assert.IsTrue(tookAll.Wait(TimeSpan.FromMinutes(2)), "no worker decoded while the consumer waited");
            for (int i = 0; i < 3; i++) Assert.IsTrue(TensorAssert.Same(expected[i], got[i]), $"batch {i} differs");
            Assert.AreEqual(30, source.Reader.ImagesProduced);
        }
        finally { hold.Set(); }
        consumer.Wait();
        foreach (var t in got.Concat(expected)) t.Dispose();
    }
}
