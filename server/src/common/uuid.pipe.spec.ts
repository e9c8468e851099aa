import { ApiException } from './api-exception';
import { IdParamPipe } from './uuid.pipe';

/** Unit: a path id that is not a UUID names nothing, so it is a 404 like an unknown one. */
describe('IdParamPipe', () => {
  const pipe = new IdParamPipe('project');

  it('passes a UUID, lower-cased', () => {
    expect(pipe.transform('0F8FAD5B-D9CB-469F-A165-70867728950E')).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
  });

  it.each(['', 'abc', '1', '../etc/passwd', "' OR 1=1 --", '0f8fad5b-d9cb-469f-a165-70867728950e0', '0f8fad5b d9cb 469f a165 70867728950e'])(
    'answers 404 not_found for %j',
    (value) => {
      let err: unknown;
      try {
        pipe.transform(value);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ApiException);
      expect((err as ApiException).getStatus()).toBe(404);
      expect((err as ApiException).code).toBe('not_found');
      expect((err as ApiException).message).toBe('project not found');
    },
  );
});
