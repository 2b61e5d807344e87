namespace Mae.MLNet.Tests;

/// <summary>Where Debian's dataset-fashion-mnist package (installed by .ci/run) puts the real data the two
/// Fashion-MNIST tests read.</summary>
internal static class DebianFashionMnist
{
    public const string Directory = "/usr/share/datasets/fashion-mnist";
}
