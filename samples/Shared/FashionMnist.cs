// The Fashion-MNIST reader the samples, the notebooks (#load "../Shared/FashionMnist.cs") and the tests share. It is no
// part of the library: a user's images come from files or an ML.NET column. No namespace, so that a C# script can load
// this file as it is.
using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;
using System.Linq;

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
        var (xDims, xData) = ReadIdx(images, maxItems);
        var (yDims, yData) = ReadIdx(labels, maxItems);
        if (xDims.Length != 3 || yDims.Length != 1 || xDims[0] != yDims[0])
            throw new InvalidDataException(
                $"'{images}' / '{labels}': expected images [N, H, W] and labels [N]; got [{string.Join(", ", xDims)}] and [{string.Join(", ", yDims)}].");
        int n = xDims[0], pixels = xDims[1] * xDims[2];
        var result = new byte[n][];
        for (int i = 0; i < n; i++) result[i] = xData.AsSpan(i * pixels, pixels).ToArray();
        if (yData.Any(l => l > 9)) throw new InvalidDataException($"'{labels}' holds labels outside 0–9.");
        return new Split(result, yData);
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

    /// <summary>The IDX format of MNIST / Fashion-MNIST (optionally gzip-compressed): a big-endian header (0x0000, type
    /// 0x08 = unsigned byte, rank) and rank big-endian dimension sizes, then the raw bytes.</summary>
    static (int[] Dimensions, byte[] Data) ReadIdx(string path, int? maxItems)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        var header = new byte[4];
        ReadExactly(stream, header, path);
        if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] is 0 or > 4)
            throw new InvalidDataException(
                $"'{path}' is not an unsigned-byte IDX file: expected magic 00 00 08 0r (rank 1–4); got {Convert.ToHexString(header)}.");
        var dims = new int[header[3]];
        var buffer = new byte[4];
        for (int i = 0; i < dims.Length; i++)
        {
            ReadExactly(stream, buffer, path);
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(buffer);
            if (dims[i] < 0) throw new InvalidDataException($"'{path}': dimension {i} is negative ({dims[i]}).");
        }
        if (maxItems is int max && max >= 0 && dims[0] > max) dims[0] = max;
        long total = dims.Aggregate(1L, (a, d) => a * d);
        if (total > int.MaxValue) throw new InvalidDataException($"'{path}' claims {total} bytes of data; more than this reader supports.");
        var data = new byte[total];
        ReadExactly(stream, data, path);
        return (dims, data);
    }

    static void ReadExactly(Stream stream, byte[] buffer, string path)
    {
        try { stream.ReadExactly(buffer); }
        catch (EndOfStreamException e) { throw new InvalidDataException($"'{path}' is truncated.", e); }
    }
}
