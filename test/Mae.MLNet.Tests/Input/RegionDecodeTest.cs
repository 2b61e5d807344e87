using Mae.MLNet.Input;
using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Input;

/// <summary>Decoding only the crop's region of a JPEG gives the pixels a full decode gives.</summary>
[TestClass]
public unsafe class RegionDecodeTest
{
    [TestMethod]
    public void RegionDecodeEqualsFullDecodeThenCrop()
    {
        using var dir = new TempDir();
        var paths = InputTestUtil.WriteJpegs(dir.Path, 12, seed0: 40, minSide: 50, maxSide: 130);
        paths.Add(Path.Combine(AppContext.BaseDirectory, "Fixtures", "Input", "cmyk.jpg")); // CMYK, written by PIL
        var extra = Environment.GetEnvironmentVariable("MAE_REGION_TEST_FOLDER"); // optional: a folder of real photos
        if (extra is not null) paths.AddRange(MaeImageFolder.ListImages(extra).Take(300));
        var list = new FileImageList(paths);
        foreach (bool scaled in new[] { false, true })
        {
            var options = new MaeImageInputOptions { Augmentation = { OutputSize = 20 }, ScaledJpegDecode = scaled }.Validate();
            var region = new ImageSampler(options);
            var full = new ImageSampler(options) { UseRegionDecode = false };
            var a = new float[3 * 20 * 20];
            var b = new float[3 * 20 * 20];
            int differing = 0, total = 0;
            float maxDiff = 0;
            for (int epoch = 0; epoch < 4; epoch++)
                for (int i = 0; i < paths.Count; i++)
                {
                    fixed (float* pa = a) region.Produce(list, i, true, 9, epoch, i, pa);
                    fixed (float* pb = b) full.Produce(list, i, true, 9, epoch, i, pb);
                    total++;
                    if (!a.SequenceEqual(b)) differing++;
                    for (int k = 0; k < a.Length; k++) maxDiff = Math.Max(maxDiff, Math.Abs(a[k] - b[k]) * 0.226f * 255);
                }
            Console.WriteLine($"scaled {scaled}: {differing} of {total} differ, max {maxDiff:F2} levels");
            Assert.AreEqual(0, differing, $"{differing} of {total} crops differ between the region and the full decode (scaled decode {scaled})");
        }
    }
}
