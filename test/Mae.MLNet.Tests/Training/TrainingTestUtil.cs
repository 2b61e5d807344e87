using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.Training;

/// <summary>Reports synchronously on the training thread (System.Progress posts to the thread pool).</summary>
internal sealed class SyncProgress(Action<MaePretrainProgress> report) : IProgress<MaePretrainProgress>
{
    public void Report(MaePretrainProgress value) => report(value);
}

internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mae-test-" + Guid.NewGuid().ToString("N"));
    public TempDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
