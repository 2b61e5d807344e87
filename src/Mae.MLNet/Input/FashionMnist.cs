namespace Mae.MLNet.Input;

/// <summary>Fashion-MNIST (Xiao et al. 2017): 28×28 grey images of 10 clothing classes, 60 000 train / 10 000 test,
/// read from the four IDX files in a folder the caller names, as torchvision's <c>datasets.FashionMNIST(root)</c> (no
/// download). Debian's <c>dataset-fashion-mnist</c> package installs them in <c>/usr/share/datasets/fashion-mnist</c>;
/// the repository embeds a subset in <c>samples/data/fashion-mnist-subset</c>.</summary>
public static class FashionMnist
{
    public static readonly string[] ClassNames =
        { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };

    /// <summary>Images as bytes (row-major 28×28 each) and labels 0–9.</summary>
    public sealed record Split(byte[][] Images, byte[] Labels)
    {
        public int Count => Labels.Length;

        /// <summary>Pixels scaled to [0, 1], one float[784] per image (CHW with C = 1).</summary>
        public float[][] ImagesAsFloats() => Images.Select(img => img.Select(b => b / 255f).ToArray()).ToArray();

        public Split Take(int n) => new(Images.Take(n).ToArray(), Labels.Take(n).ToArray());
    }

    /// <summary>Whether <paramref name="directory"/> holds the training images (.gz or plain).</summary>
    public static bool IsInstalled(string directory)
        => File.Exists(Path.Combine(directory, "train-images-idx3-ubyte.gz")) || File.Exists(Path.Combine(directory, "train-images-idx3-ubyte"));

    /// <summary>Loads the "train" or "t10k" split from <paramref name="directory"/> (files may be .gz or plain).</summary>
    public static Split Load(string split, string directory, int? maxItems = null)
    {
        if (split is not ("train" or "t10k")) throw new ArgumentException($"split must be 'train' or 't10k'; got '{split}'.", nameof(split));
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string images = Find(directory, $"{split}-images-idx3-ubyte"), labels = Find(directory, $"{split}-labels-idx1-ubyte");
        var x = IdxFile.Read(images, maxItems);
        var y = IdxFile.Read(labels, maxItems);
        if (x.Dimensions.Length != 3 || y.Dimensions.Length != 1 || x.Dimensions[0] != y.Dimensions[0])
            throw new InvalidDataException(
                $"'{images}' / '{labels}': expected images [N, H, W] and labels [N]; got [{string.Join(", ", x.Dimensions)}] and [{string.Join(", ", y.Dimensions)}].");
        int n = x.Dimensions[0], pixels = x.Dimensions[1] * x.Dimensions[2];
        var result = new byte[n][];
        for (int i = 0; i < n; i++) result[i] = x.Data.AsSpan(i * pixels, pixels).ToArray();
        if (y.Data.Any(l => l > 9)) throw new InvalidDataException($"'{labels}' holds labels outside 0–9.");
        return new Split(result, y.Data);
    }

    static string Find(string directory, string stem)
    {
        foreach (var name in new[] { stem + ".gz", stem })
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException(
            $"Fashion-MNIST file '{stem}(.gz)' was not found in '{directory}'. On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist.");
    }
}
