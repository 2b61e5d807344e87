using Mae.MLNet.Input;

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
}
