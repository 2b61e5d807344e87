namespace Mae.MLNet.Benchmarks;

/// <summary>An <see cref="IProgress{T}"/> that runs its action on the reporting thread (System.Progress posts to a
/// synchronization context instead, so a benchmark could read its figures before they arrive).</summary>
sealed class ProgressAction<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
